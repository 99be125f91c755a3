/* cpu.c - which SIMD backends this CPU and OS can run, and how many physical
 * cores we may use. x86-64: cpuid leaves 1 and 7 plus xgetbv (the OS must save
 * the ymm / zmm / tile state or the instructions fault). aarch64:
 * getauxval(AT_HWCAP). */
#include "kern/kern_impl.h"

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void cpu_detect(CpuFeatures *f)
{
    memset(f, 0, sizeof *f);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    int os_ymm = (xcr0 & 0x6) == 0x6;      /* SSE + AVX state */
    int os_zmm = (xcr0 & 0xe6) == 0xe6;    /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int vnni = (c >> 11) & 1;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    int bf16 = (a1 >> 5) & 1;
    f->avx2 = os_ymm && avx2 && fma && f16c;
    f->avx512 = f->avx2 && os_zmm && f512 && dq && bw && vl && vnni && bf16;
    /* AMX-TILE / INT8 / BF16, and the OS manages the tile state (XCR0 bits
     * 17, 18); Linux still wants each process to ask first (cpu_amx_request) */
    int amx = ((d >> 24) & 1) && ((d >> 25) & 1) && ((d >> 22) & 1);
    f->amx = f->avx512 && amx && (xcr0 & 0x60000) == 0x60000;
}

#if defined(__linux__)
#include <sys/syscall.h>
#endif

int cpu_amx_request(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 0 : -1;
#else
    return -1;
#endif
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

void cpu_detect(CpuFeatures *f)
{
    memset(f, 0, sizeof *f);
    unsigned long hw = getauxval(AT_HWCAP);
    f->neon = (hw & HWCAP_ASIMD) != 0;
    f->dotprod = (hw & HWCAP_ASIMDDP) != 0;
}
#else
void cpu_detect(CpuFeatures *f) { memset(f, 0, sizeof *f); }
#endif
#if !defined(__x86_64__)
int cpu_amx_request(void) { return -1; }
#endif

static int read_int(const char *path, int *v)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    int ok = fscanf(fp, "%d", v) == 1;
    fclose(fp);
    return ok ? 0 : -1;
}

int cpu_physical_cores(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    int allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    /* count distinct (package, core) pairs among the CPUs we may run on */
    enum { MAXC = 1024 };
    int pkg[MAXC], core[MAXC], n_unique = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && cpu < 4096; cpu++) {
        if (allowed && !CPU_ISSET(cpu, &set)) continue;
        char path[128];
        int p, c;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        if (read_int(path, &c)) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        if (read_int(path, &p)) p = 0;
        int seen = 0;
        for (int i = 0; i < n_unique; i++)
            if (pkg[i] == p && core[i] == c) seen = 1;
        if (!seen && n_unique < MAXC) {
            pkg[n_unique] = p;
            core[n_unique] = c;
            n_unique++;
        }
    }
    if (n_unique > 0) return n_unique;
    if (allowed > 0) return allowed;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
