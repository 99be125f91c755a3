/* jschema.h - a JSON Schema of the subset tools use, compiled into a graph
 * of nodes that the byte-level matcher (jmatch.h) walks.
 *
 * The subset: type (string, number, integer, boolean, null, object, array,
 * or a list of them), properties, required, additionalProperties (false,
 * true or absent), enum, const, anyOf, items, minItems, maxItems, minLength,
 * maxLength, minimum, maximum, exclusiveMinimum, exclusiveMaximum; the
 * annotations title, description, default, examples, $schema, $id, $comment
 * are ignored. Any other keyword is an error naming it (strict), or is
 * ignored (lenient: schemas an MCP server sends, which it checks itself).
 *
 * What is generated is a subset of what the schema accepts, so every output
 * validates: object keys come in the order of "properties" (each optional one
 * may be left out) and only declared keys are written unless the object
 * declares no properties; anyOf takes the first branch that the first byte
 * fits; numbers have at most 15 integer and 6 fraction digits, no exponent,
 * and a fraction only where every fraction of that integer part is in range.
 * A JsSchema is immutable after compiling and may be shared by threads. */
#ifndef DUET_JSCHEMA_H
#define DUET_JSCHEMA_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "util/err.h"

typedef enum JsKind {
    JS_OBJECT,   /* declared properties, or any keys (free) */
    JS_ARRAY,
    JS_STRING,
    JS_NUMBER,
    JS_INTEGER,
    JS_LITERALS, /* enum / const / true / false / null: compact JSON texts */
    JS_UNION,    /* anyOf, type lists, any value */
    JS_CALL,     /* {"name": NAME, "arguments": ARGS(NAME)}: a tool call */
} JsKind;

typedef struct JsNode {
    JsKind kind;
    int minlen;          /* bytes of the shortest value this node generates */
    uint8_t first[32];   /* bit b: a generated value can start with byte b */
    /* JS_OBJECT: n props; key i's JSON-escaped bytes (no quotes) key[i] of klen[i] */
    int n, free_keys;
    char **key;
    int *klen, *prop;    /* (n) prop: node of property i's value */
    uint8_t *req;        /* (n) 1 if required */
    int *req_after;      /* (n + 1) bytes the required properties i.. need, each with its comma */
    /* JS_ARRAY; item is also the values' node of a JS_OBJECT with free keys
     * (additionalProperties a schema; -1: any value) */
    int item, min_items, max_items;     /* max -1: none */
    /* JS_STRING: code points */
    int min_len, max_len;               /* max -1: none */
    /* JS_NUMBER / JS_INTEGER: integer bounds of the integer part; real bounds for fractions */
    double ilo, ihi, lo, hi;            /* +-INFINITY when absent */
    /* JS_NUMBER with no integer in [lo, hi] (a range inside one unit, such as
     * exclusiveMinimum 0, exclusiveMaximum 1): every value is written
     * [-]P.F, integer part P and sign fixed, F at most 6 digits; fraction
     * units (1e-6) kmin..kmax are those whose value is in range */
    int cell, cell_neg;
    double cell_p;
    int32_t kmin, kmax;
    /* JS_LITERALS: n texts lit[i] of llen[i] bytes; JS_CALL: n tool names as JSON strings */
    char **lit;
    int *llen;
    /* JS_UNION: n alternatives; JS_CALL: alt[i] = arguments node of tool i */
    int *alt;
} JsNode;

typedef struct JsSchema {
    JsNode *node; /* (n) */
    int n, cap;
    int root;
    int str_any;  /* a free string node (keys of free objects) */
    int any;      /* the any-value union */
} JsSchema;

/* A cell number node (see JsNode.cell) after fraction digits worth f (b
 * digits): the fewest more digits (at least one if at_least_one) that end
 * on a value in range, -1 if none does. */
int jschema_cell_digits(const JsNode *n, int f, int b, int at_least_one);

/* Compiles a schema (cJSON; `true` and {} mean any value). lenient: ignore
 * unknown keywords instead of failing. `where` names the source in messages
 * ("tools[2].function.parameters"). 0, or -1 with *e set naming the keyword. */
int jschema_compile(JsSchema *s, const cJSON *schema, int lenient, const char *where, Err *e);

/* The schema of a tool call over OpenAI-form tools (a JSON array): the root
 * is a JS_CALL whose names are the tools' names. `only` (may be NULL) keeps
 * just that tool (-1 with *e set when there is none of that name). Errors
 * name the tool ("tools[2] (get_x).function.parameters: ..."). */
int jschema_compile_tools(JsSchema *s, const cJSON *tools, const char *only, Err *e);

/* Removes, in place and recursively, the keywords outside the subset (for
 * schemas an MCP server sends: it checks its arguments itself). */
void jschema_strip_unknown(cJSON *schema);

/* Frees the nodes; safe on a zeroed JsSchema. */
void jschema_free(JsSchema *s);

static inline int js_first_has(const JsNode *n, int b) { return (n->first[b >> 3] >> (b & 7)) & 1; }

#endif
