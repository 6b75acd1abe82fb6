#!/usr/bin/env bash
# device-bundle.sh: pack this machine's Open MPI and OpenBLAS (Debian's) into a
# relocatable tarball, for a GPU machine that has CUDA but no MPI and no
# package archive (the GPU checks in README "CUDA backend" ran this way).
#
#   tools/device-bundle.sh OUTDIR        -> OUTDIR/mpi-blas.tar.xz
#
# On the GPU machine:
#   mkdir -p /opt/mt && tar -xJf OUTDIR/mpi-blas.tar.xz -C /opt/mt
#   source /opt/mt/env.sh     # PATH, LD_LIBRARY_PATH, OPAL_PREFIX, PMIX_INSTALL_PREFIX
#
# Open MPI is relocated with OPAL_PREFIX (Debian configures it with prefix
# /usr, so every path but sysconfdir follows the prefix); PMIx with
# PMIX_INSTALL_PREFIX and its plugin path. Shared libraries the binaries need beyond glibc go to
# lib/. The CUDA libraries are not packed: the GPU machine has its own.
set -euo pipefail
out=${1:?usage: tools/device-bundle.sh OUTDIR}
arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/mt
mkdir -p "$root/usr/bin" "$root/usr/lib/$arch" "$root/usr/share" "$root/lib"

cp -a /usr/bin/orterun /usr/bin/orted "$root/usr/bin/"
ln -s orterun "$root/usr/bin/mpirun"
ln -s orterun "$root/usr/bin/mpiexec"
cp -a "/usr/lib/$arch/openmpi" "/usr/lib/$arch/pmix2" "$root/usr/lib/$arch/"
rm -rf "$root/usr/lib/$arch/openmpi/include" "$root/usr/lib/$arch/pmix2/include"
rm -f "$root"/usr/lib/"$arch"/openmpi/lib/*java* "$root"/usr/lib/"$arch"/openmpi/lib/*.a
cp -a /usr/share/openmpi "$root/usr/share/"
[ -d /usr/share/pmix ] && cp -a /usr/share/pmix "$root/usr/share/" || true

# Every library the MPI tree and the OpenMP OpenBLAS load, glibc's own excepted.
blas=/usr/lib/$arch/openblas-openmp/libopenblas.so.0
{
    ldd /usr/bin/orterun /usr/bin/orted "$blas"
    find "/usr/lib/$arch/openmpi" "/usr/lib/$arch/pmix2" -name '*.so*' -exec ldd {} + 2>/dev/null
} | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$root/lib/"; done
cp -L "$blas" "$root/lib/libopenblas.so.0"

cat > "$root/env.sh" <<'EOF'
# Source me: relocated Open MPI + OpenBLAS from tools/device-bundle.sh.
MT_BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
arch=x86_64-linux-gnu
export OPAL_PREFIX=$MT_BUNDLE/usr
export PMIX_INSTALL_PREFIX=$MT_BUNDLE/usr/lib/$arch/pmix2
export PATH=$MT_BUNDLE/usr/bin:$PATH
export LD_LIBRARY_PATH=$MT_BUNDLE/lib:$MT_BUNDLE/usr/lib/$arch/openmpi/lib:$MT_BUNDLE/usr/lib/$arch/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# PMIx finds its plugins by a compiled-in path: point it at the copy.
export PMIX_MCA_mca_base_component_path=$MT_BUNDLE/usr/lib/$arch/pmix2/lib/pmix
export PMIX_MCA_pcompress_base_silence_warning=1
# A GPU image may carry its own PMIx of another version: do not report its plugins.
export PMIX_MCA_mca_base_component_show_load_errors=0
EOF
mkdir -p "$out"
tar -C "$root" -cJf "$out/mpi-blas.tar.xz" .
echo "device-bundle: $out/mpi-blas.tar.xz ($(du -h "$out/mpi-blas.tar.xz" | cut -f1))"
