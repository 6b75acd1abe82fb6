// The CUDA runtime API as tests/cudaemu provides it (see cudaemu.h).
#include "cudaemu.h"
