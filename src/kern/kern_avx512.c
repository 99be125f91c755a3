#include "kern/kern_impl.h"
const KernOps kern_ops_avx512 = {0};
