/* hostile.c - hostile.h: helpers of test_hostile.c and test_hostile_files.c. */
#include "hostile.h"

#include <stdio.h>

#include "duet.h"

const int hostile_prompt[HOSTILE_NP] = {151644, 872, 198, 3838, 374, 279, 13940, 2730, 30, 151645, 198, 151644, 77091, 198};

char *hostile_path(const char *dir, const char *name)
{
    static char p[8][512];
    static int k;
    char *s = p[k++ % 8];
    snprintf(s, 512, "%s/%s", dir, name);
    return s;
}

int hostile_compile(const char *base, const char *spec, const char *quant, const char *out, char *err, size_t n)
{
    const char *loras[] = {spec, NULL};
    duet_compile_options co;
    duet_compile_options_default(&co);
    co.loras = spec ? loras : NULL;
    co.quant = quant;
    return duet_compile_file(base, out, &co, err, n);
}
