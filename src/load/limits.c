#include "load/limits.h"

#include "kern/qblock.h"

#include <stdio.h>
#include <string.h>

#include "kern/kern.h"

_Static_assert(LIMIT_LORA_RANK == KERN_LORA_MAX_RANK, "the adapter rank limit is the LoRA kernels' tile");

int limit_adapter_name(const char *name, const char *where, Err *e)
{
    char shown[80];
    size_t n = strlen(name);
    if (n == 0 || n > LIMIT_ADAPTER_NAME)
        return err_set(e, "%s: adapter name \"%s\" is %zu bytes (expected 1 .. %d)", where,
                       limit_escape(shown, sizeof shown, name), n, LIMIT_ADAPTER_NAME);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return err_set(e, "%s: adapter name \"%s\": byte %zu is not one of A-Z a-z 0-9 . _ -", where,
                           limit_escape(shown, sizeof shown, name), i);
    }
    return 0;
}

char *limit_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    if (!cap) return out;
    for (; *s && o + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            if (o + 5 > cap) break;
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    out[o] = 0;
    return out;
}

/* 16-bit floats: a value is inf or NaN when its exponent bits are all ones */
static size_t first_bad16(const void *p, size_t n, uint16_t expo)
{
    const unsigned char *b = p;
    for (size_t i0 = 0; i0 < n; i0 += 4096) {
        size_t i1 = n - i0 < 4096 ? n : i0 + 4096;
        int any = 0;
        for (size_t i = i0; i < i1; i++) { /* a branch-free sweep, then the exact place */
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            any |= (h & expo) == expo;
        }
        if (any)
            for (size_t i = i0; i < i1; i++) {
                uint16_t h;
                memcpy(&h, b + 2 * i, 2);
                if ((h & expo) == expo) return i;
            }
    }
    return n;
}

static size_t first_bad32(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i0 = 0; i0 < n; i0 += 4096) {
        size_t i1 = n - i0 < 4096 ? n : i0 + 4096;
        int any = 0;
        for (size_t i = i0; i < i1; i++) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4); /* safetensors data may be only 2-byte aligned */
            any |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (any)
            for (size_t i = i0; i < i1; i++) {
                uint32_t u;
                memcpy(&u, b + 4 * i, 4);
                if ((u & 0x7f800000u) == 0x7f800000u) return i;
            }
    }
    return n;
}

size_t limit_first_nonfinite(const float *x, size_t n) { return first_bad32(x, n); }
size_t limit_first_nonfinite_f16(const uint16_t *x, size_t n) { return first_bad16(x, n, 0x7c00); }

int limit_finite_qmat(const QMat *q, const char *file, const char *name, Err *e)
{
    size_t n = (size_t)q->rows * q->cols, bad = n;
    const char *part = "a weight";
    switch (q->type) {
    case DT_F32: bad = first_bad32(q->data, n); break;
    case DT_F16: bad = first_bad16(q->data, n, 0x7c00); break;
    case DT_BF16: bad = first_bad16(q->data, n, 0x7f80); break;
    default: /* the block types: their scales */
        n = bad = qmat_scale_bytes(q->type, q->rows, q->cols) / 2;
        part = "a block scale";
        if (!dtype_is_super(q->type)) {
            bad = first_bad16(q->scales, n, 0x7c00);
            break;
        }
        /* super-blocks: each D finite and each derived block scale too (a
         * large D times a sub-scale can overflow f16) */
        for (size_t i = 0; i < n && bad == n; i += QSUPER_WORDS) {
            uint16_t D = q->scales[i];
            if ((D & 0x7c00) == 0x7c00) bad = i;
            for (int k = 0; k < QSUPER && bad == n; k++)
                if ((qb_super_scale(D, qb_super_k(q->scales + i, k)) & 0x7c00) == 0x7c00) bad = i;
        }
        break;
    }
    if (bad < n)
        return err_set(e, "%s: tensor \"%s\" holds a non-finite value (inf or NaN) in %s at element %zu: damaged weights "
                       "or an fp16 overflow in training",
                       file, name, part, bad);
    if (q->in_scale && (bad = first_bad32(q->in_scale, (size_t)q->cols)) < (size_t)q->cols)
        return err_set(e, "%s: tensor \"%s\" holds a non-finite value (inf or NaN) in its input scales at element %zu", file,
                       name, bad);
    return 0;
}
