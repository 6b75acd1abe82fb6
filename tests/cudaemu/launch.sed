# kernel<<<grid, block[, shared[, stream]]>>>(args) -> cudaemu::cfg(grid, block, ...)(kernel)(args)
s/\([A-Za-z_][A-Za-z_0-9]*\(<[^<>]*>\)\{0,1\}\)<<<\(.*\)>>>(/cudaemu::cfg(\3)(\1)(/g
# __shared__ T a[n], b[m]; -> the same, then CUDAEMU_SHARED(a) CUDAEMU_SHARED(b) on the
# same line (cudaemu.h: each block starts with the arrays filled with 0xa5)
/^[[:space:]]*__shared__[[:space:]]/{
h
s/^[[:space:]]*__shared__[[:space:]]*[A-Za-z_][A-Za-z_0-9]*[[:space:]]*//
s/\[[^]]*\]//g
s/;.*//
s/[[:space:]]//g
s/\([A-Za-z_][A-Za-z_0-9]*\),*/CUDAEMU_SHARED(\1)/g
H
x
s/\n/ /
}
