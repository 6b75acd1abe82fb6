#!/usr/bin/env bash
# install-deps.sh: installs the Debian packages megatron.c needs to build,
# run and test, and only those missing. With everything present it prints
# one line and returns at once, so `make run` / `make test` can call it
# every time.
#
# Why each package:
#   gcc make                 the build
#   openmpi-bin libopenmpi-dev   mpicc, mpirun (tensor/pipeline/data parallelism)
#   libopenblas-openmp-dev   OpenBLAS built with OpenMP, whose threads cooperate
#                            with ours; it ships its own cblas.h (under
#                            /usr/include/<arch>/openblas-openmp) and registers the
#                            generic cblas.h/libopenblas.so alternatives, so
#                            libopenblas-dev is not needed
#   python3-torch python3-numpy  the PyTorch oracle the tests compare against
#                            (Debian's /usr/bin/python3; a pyenv/venv python3
#                            earlier on PATH does not see them)
#   fortunes-min fortunes    the default training text (/usr/share/games/fortunes)
#   gnuplot-nox              loss curves in the terminal
#   librsvg2-bin             rsvg-convert: the timeline test renders its SVG to PNG
#   python3-regex            \p{L}/\p{N} patterns for the independent Python BPE
#                            reference of the tokenizer test
#   clang libclang-rt-dev    libFuzzer (clang -fsanitize=fuzzer) for `make fuzz` and
#                            tests/suite_fuzz.sh: clang only recommends the
#                            sanitizer/fuzzer runtimes (libclang-rt-dev pulls the
#                            default version's), and we install without recommends
set -euo pipefail

packages=(gcc make openmpi-bin libopenmpi-dev libopenblas-openmp-dev
          python3-torch python3-numpy fortunes-min fortunes gnuplot-nox clang
          libclang-rt-dev librsvg2-bin python3-regex)

# One dpkg-query for all (one per package costs a second); unknown names
# print nothing and count as missing.
installed=" $(dpkg-query -W -f='${Package}|${Status}\n' "${packages[@]}" 2>/dev/null |
              awk -F'|' '$2 ~ / ok installed$/ {printf "%s ", $1}' || true)"
missing=()
for p in "${packages[@]}"; do
    [[ $installed == *" $p "* ]] || missing+=("$p")
done

# Debian's torch and numpy belong to /usr/bin/python3; say so (without
# running the other python, which can take a second) when PATH differs.
note=""
py=$(command -v python3 || true)
case "$py" in
    /usr/bin/python3 | /bin/python3) ;;
    *) note=" (note: python3 on PATH is ${py:-missing}; Debian's torch and numpy are for /usr/bin/python3)" ;;
esac

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages present$note"
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null; then
        echo "install-deps: error: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt (unattended-upgrades, a colleague's script) may hold the lock:
# wait for it rather than fail.
apt_opts=(-o DPkg::Lock::Timeout=600 -q)
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >/tmp/install-deps.$$.log 2>&1 ||
   ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends \
        "${missing[@]}" >>/tmp/install-deps.$$.log 2>&1; then
    tail -n 5 /tmp/install-deps.$$.log >&2
    echo "install-deps: error: apt-get failed installing ${missing[*]} (full log: /tmp/install-deps.$$.log)" >&2
    exit 1
fi
rm -f /tmp/install-deps.$$.log
echo "install-deps: installed ${missing[*]}$note"
