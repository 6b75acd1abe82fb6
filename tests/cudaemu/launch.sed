# kernel<<<grid, block[, shared[, stream]]>>>(args) -> cudaemu::cfg(grid, block, ...)(kernel)(args)
s/\([A-Za-z_][A-Za-z_0-9]*\(<[^<>]*>\)\{0,1\}\)<<<\(.*\)>>>(/cudaemu::cfg(\3)(\1)(/g
