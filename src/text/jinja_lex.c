/* jinja_lex.c - template source to tokens, with the whitespace rules of HF's
 * environment: trim_blocks (drop the first newline after a block or comment
 * tag), lstrip_blocks (drop spaces before a block or comment tag that starts
 * its line), "-" on a delimiter strips all whitespace on that side, "+"
 * disables lstrip/trim for that side. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_int.h"

typedef struct Lex {
    const char *s; /* normalized source */
    size_t n, pos;
    int line, col;
    const char *name;
    JTokens *out;
    Err *e;
} Lex;

static int lex_err(Lex *L, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int lex_err(Lex *L, int line, int col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(L->e, "%s:%d:%d: %s", L->name, line, col, msg);
}

static void advance(Lex *L, size_t to)
{
    for (; L->pos < to; L->pos++) {
        if (L->s[L->pos] == '\n') {
            L->line++;
            L->col = 1;
        } else if (((unsigned char)L->s[L->pos] & 0xC0) != 0x80) {
            L->col++;
        }
    }
}

static JTok *push(Lex *L, JTokKind k, int line, int col)
{
    JTokens *t = L->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        JTok *v = realloc(t->v, cap * sizeof *v);
        if (!v) {
            err_set(L->e, "out of memory");
            return NULL;
        }
        t->v = v;
        t->cap = cap;
    }
    JTok *tk = &t->v[t->n++];
    memset(tk, 0, sizeof *tk);
    tk->kind = k;
    tk->line = line;
    tk->col = col;
    return tk;
}

static int push_text(Lex *L, const char *p, size_t n, int line, int col)
{
    if (!n) return 0;
    JTok *t = push(L, TK_TEXT, line, col);
    if (!t || !(t->s = malloc(n + 1))) return err_set(L->e, "out of memory");
    memcpy(t->s, p, n);
    t->s[n] = 0;
    t->n = n;
    return 0;
}

/* Appends the UTF-8 encoding of code point c. */
static size_t put_utf8(char *o, unsigned long c)
{
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* A string literal at L->pos (quote char there); Python unicode-escape rules. */
static int lex_string(Lex *L, int line, int col)
{
    char q = L->s[L->pos];
    size_t i = L->pos + 1, end;
    for (end = i; end < L->n && L->s[end] != q; end++)
        if (L->s[end] == '\\') end++;
    if (end >= L->n) return lex_err(L, line, col, "unterminated string");
    char *o = malloc(end - i + 1), *w = o;
    if (!o) return err_set(L->e, "out of memory");
    while (i < end) {
        char c = L->s[i++];
        if (c != '\\') {
            *w++ = c;
            continue;
        }
        c = L->s[i++];
        int hex = 0;
        switch (c) {
        case 'n': *w++ = '\n'; break;
        case 't': *w++ = '\t'; break;
        case 'r': *w++ = '\r'; break;
        case 'a': *w++ = '\a'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'v': *w++ = '\v'; break;
        case '\\': case '\'': case '"': *w++ = c; break;
        case '\n': break; /* line continuation */
        case 'x': hex = 2; break;
        case 'u': hex = 4; break;
        case 'U': hex = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                unsigned long v = (unsigned long)(c - '0');
                for (int k = 0; k < 2 && i < end && L->s[i] >= '0' && L->s[i] <= '7'; k++) v = v * 8 + (unsigned long)(L->s[i++] - '0');
                w += put_utf8(w, v);
            } else {
                *w++ = '\\';
                *w++ = c;
            }
        }
        if (hex) {
            unsigned long v = 0;
            for (int k = 0; k < hex; k++, i++) {
                if (i >= end || !isxdigit((unsigned char)L->s[i])) {
                    free(o);
                    return lex_err(L, line, col, "truncated \\%c escape in string", c);
                }
                char h = L->s[i];
                v = v * 16 + (unsigned long)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
            }
            if (v > 0x10FFFF) {
                free(o);
                return lex_err(L, line, col, "escape out of range in string");
            }
            w += put_utf8(w, v);
        }
    }
    JTok *t = push(L, TK_STRING, line, col);
    if (!t) {
        free(o);
        return -1;
    }
    *w = 0;
    t->s = o;
    t->n = (size_t)(w - o);
    advance(L, end + 1);
    return 0;
}

static const struct { const char *s; JOp op; } ops[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {">=", OP_GE}, {"<=", OP_LE},
    {"+", OP_ADD}, {"-", OP_SUB}, {"*", OP_MUL}, {"/", OP_DIV}, {"%", OP_MOD}, {"~", OP_TILDE},
    {"[", OP_LBRACK}, {"]", OP_RBRACK}, {"(", OP_LPAREN}, {")", OP_RPAREN}, {"{", OP_LBRACE},
    {"}", OP_RBRACE}, {">", OP_GT}, {"<", OP_LT}, {"=", OP_ASSIGN}, {".", OP_DOT}, {":", OP_COLON},
    {"|", OP_PIPE}, {",", OP_COMMA},
};

/* Tokens of one {{ }} or {% %} up to its end delimiter. *strip_after gets
 * 1 for "-", 2 for "+" before the end delimiter, 0 otherwise. */
static int lex_tag(Lex *L, int is_block, int tline, int tcol, int *strip_after)
{
    const char *end = is_block ? "%}" : "}}";
    int depth = 0;
    for (;;) {
        while (L->pos < L->n && isspace((unsigned char)L->s[L->pos])) advance(L, L->pos + 1);
        if (L->pos >= L->n) return lex_err(L, tline, tcol, "unclosed %s tag", is_block ? "{%" : "{{");
        const char *p = L->s + L->pos;
        size_t left = L->n - L->pos;
        int line = L->line, col = L->col;
        if (depth == 0) {
            size_t k = 0;
            *strip_after = 0;
            if ((p[0] == '-' || p[0] == '+') && left >= 3 && !memcmp(p + 1, end, 2)) {
                *strip_after = p[0] == '-' ? 1 : 2;
                k = 1;
            }
            if (left >= k + 2 && !memcmp(p + k, end, 2)) {
                if (!push(L, is_block ? TK_BLOCK_END : TK_VAR_END, line, col)) return -1;
                advance(L, L->pos + k + 2);
                return 0;
            }
        }
        unsigned char c = (unsigned char)*p;
        if (c == '\'' || c == '"') {
            if (lex_string(L, line, col)) return -1;
        } else if (isdigit(c)) {
            size_t i = 0;
            int is_float = 0;
            while (i < left && (isdigit((unsigned char)p[i]) || p[i] == '_')) i++;
            if (i + 1 < left && p[i] == '.' && isdigit((unsigned char)p[i + 1])) {
                is_float = 1;
                i++;
                while (i < left && (isdigit((unsigned char)p[i]) || p[i] == '_')) i++;
            }
            if (i < left && (p[i] == 'e' || p[i] == 'E')) {
                size_t j = i + 1;
                if (j < left && (p[j] == '+' || p[j] == '-')) j++;
                if (j < left && isdigit((unsigned char)p[j])) {
                    is_float = 1;
                    while (j < left && isdigit((unsigned char)p[j])) j++;
                    i = j;
                }
            }
            char num[64];
            size_t m = 0;
            for (size_t k = 0; k < i && m < sizeof num - 1; k++)
                if (p[k] != '_') num[m++] = p[k];
            num[m] = 0;
            JTok *t = push(L, is_float ? TK_FLOAT : TK_INT, line, col);
            if (!t) return -1;
            if (is_float) t->f = strtod(num, NULL);
            else t->i = strtoll(num, NULL, 10);
            advance(L, L->pos + i);
        } else if (isalpha(c) || c == '_') {
            size_t i = 0;
            while (i < left && (isalnum((unsigned char)p[i]) || p[i] == '_')) i++;
            JTok *t = push(L, TK_NAME, line, col);
            if (!t || !(t->s = malloc(i + 1))) return err_set(L->e, "out of memory");
            memcpy(t->s, p, i);
            t->s[i] = 0;
            t->n = i;
            advance(L, L->pos + i);
        } else {
            size_t k;
            for (k = 0; k < sizeof ops / sizeof ops[0]; k++) {
                size_t m = strlen(ops[k].s);
                if (left >= m && !memcmp(p, ops[k].s, m)) break;
            }
            if (k == sizeof ops / sizeof ops[0]) return lex_err(L, line, col, "unexpected character '%c'", c);
            JOp op = ops[k].op;
            if (op == OP_LBRACK || op == OP_LPAREN || op == OP_LBRACE) depth++;
            if ((op == OP_RBRACK || op == OP_RPAREN || op == OP_RBRACE) && depth > 0) depth--;
            JTok *t = push(L, TK_OP, line, col);
            if (!t) return -1;
            t->op = op;
            advance(L, L->pos + strlen(ops[k].s));
        }
    }
}

int jinja_lex(const char *src, size_t len, const char *name, JTokens *out, Err *e)
{
    memset(out, 0, sizeof *out);
    /* Jinja splits on \r\n, \r, \n, rejoins with \n, drops one trailing newline */
    char *s = malloc(len + 1);
    if (!s) return err_set(e, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    Lex L = {s, n, 0, 1, 1, name, out, e};
    int rc = 0, strip_next = 0; /* strip_next: 1 all whitespace, 0 nothing */
    while (L.pos < L.n && !rc) {
        if (strip_next) {
            while (L.pos < L.n && isspace((unsigned char)L.s[L.pos])) advance(&L, L.pos + 1);
            strip_next = 0;
        }
        size_t start = L.pos;
        int tline = L.line, tcol = L.col;
        const char *tag = NULL;
        for (size_t i = start; i + 1 < L.n; i++)
            if (L.s[i] == '{' && (L.s[i + 1] == '{' || L.s[i + 1] == '%' || L.s[i + 1] == '#')) {
                tag = L.s + i;
                break;
            }
        size_t tpos = tag ? (size_t)(tag - L.s) : L.n;
        size_t tlen = tpos - start;
        if (tag) {
            char kind = tag[1], mod = tpos + 2 < L.n ? tag[2] : 0;
            if (mod == '-') {
                while (tlen && isspace((unsigned char)L.s[start + tlen - 1])) tlen--;
            } else if (kind != '{' && mod != '+') {
                size_t l = tlen;
                while (l && L.s[start + l - 1] != '\n') l--;
                int line_start = l > 0 || start == 0 || L.s[start - 1] == '\n';
                int only_ws = l < tlen;
                for (size_t k = l; k < tlen; k++)
                    if (!isspace((unsigned char)L.s[start + k])) only_ws = 0;
                if (line_start && only_ws) tlen = l;
            }
        }
        if (push_text(&L, L.s + start, tlen, tline, tcol)) rc = -1;
        if (rc || !tag) {
            advance(&L, tpos);
            break;
        }
        advance(&L, tpos);
        int line = L.line, col = L.col;
        char kind = tag[1];
        size_t skip = 2 + (tpos + 2 < L.n && (tag[2] == '-' || tag[2] == '+'));
        advance(&L, L.pos + skip);
        int strip_after = 0;
        if (kind == '#') {
            const char *end = NULL;
            for (size_t i = L.pos; i + 1 < L.n; i++)
                if (L.s[i] == '#' && L.s[i + 1] == '}') {
                    end = L.s + i;
                    break;
                }
            if (!end) {
                rc = lex_err(&L, line, col, "unclosed comment");
                break;
            }
            size_t epos = (size_t)(end - L.s);
            if (epos > L.pos && (end[-1] == '-' || end[-1] == '+')) strip_after = end[-1] == '-' ? 1 : 2;
            advance(&L, epos + 2);
        } else {
            if (!push(&L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, line, col)) {
                rc = -1;
                break;
            }
            rc = lex_tag(&L, kind == '%', line, col, &strip_after);
            if (rc) break;
        }
        if (strip_after == 1) strip_next = 1;
        else if (strip_after == 0 && kind != '{' && L.pos < L.n && L.s[L.pos] == '\n')
            advance(&L, L.pos + 1); /* trim_blocks */
    }
    if (!rc && !push(&L, TK_EOF, L.line, L.col)) rc = -1;
    free(s);
    if (rc) jinja_tokens_free(out);
    return rc;
}

void jinja_tokens_free(JTokens *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->v[i].s);
    free(t->v);
    memset(t, 0, sizeof *t);
}
