/* sample.h - choosing the next token from logits: greedy, or temperature,
 * top-k, top-p and min-p sampling, with repetition / frequency / presence
 * penalties, in the order transformers applies them (penalties, temperature,
 * top-k, top-p). The random state lives in the Sampler, so a seed makes a
 * run repeatable and sessions do not share state. */
#ifndef DUET_SAMPLE_H
#define DUET_SAMPLE_H

#include <stdint.h>

#include "load/config.h"

typedef struct SampleParams {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off (HF: divide positive logits, multiply negative ones) */
    float frequency_penalty;  /* 0: off (OpenAI: minus count * penalty) */
    float presence_penalty;   /* 0: off */
    uint64_t seed;
} SampleParams;

/* Greedy defaults: temperature 0, everything off, seed 0. */
SampleParams sample_defaults(void);

/* The defaults a user of a model expects (seed 0): its generation_config.json
 * as transformers applies it when g->set (do_sample false: greedy, with the
 * repetition penalty), else llama.cpp's (temperature 0.8, top_k 40, top_p
 * 0.95, min_p 0.05, no penalty). */
SampleParams sample_model_defaults(const GenDefaults *g);

typedef struct Cand {
    float logit;
    int id;
} Cand;

typedef struct Sampler {
    SampleParams p;
    uint64_t rng;
    int vocab;
    int *cand;      /* (vocab) candidate ids */
    float *prob;    /* (vocab) */
    int *counts;    /* (vocab) occurrences in the history, for penalties */
    Cand *sorted;   /* (vocab) candidates in descending order */
    int *ban;       /* (n_ban) ids never sampled: rows of the embedding without a token */
    int n_ban, cap_ban;
} Sampler;

/* 0, or -1 on allocation failure. */
int sampler_init(Sampler *s, const SampleParams *p, int vocab);
void sampler_free(Sampler *s);
/* New parameters for the next samples; the random state restarts from
 * p->seed, the history the penalties see is kept. */
void sampler_set_params(Sampler *s, const SampleParams *p);

/* Records a token in the history the penalties look at (prompt and output). */
void sampler_accept(Sampler *s, int token);
/* Forgets the history (a cleared context). */
void sampler_reset(Sampler *s);

/* Never samples `id` from now on (Qwen pads its embedding with rows that
 * have no token: sampling one would end the text with an error). 0, or -1
 * out of memory. Kept by sampler_reset and sampler_set_params. */
int sampler_ban(Sampler *s, int id);

/* Picks the next token. Modifies logits in place (penalties, temperature,
 * banned ids). -1 when the logits hold a NaN or +inf (weights or an adapter
 * that overflow: every choice would be meaningless) or when no id is left.
 * A temperature below 1e-6 is greedy (dividing by it would overflow). */
int sampler_sample(Sampler *s, float *logits);

/* The same over the tokens whose bit is set in mask (bit i of mask[i / 32]):
 * the others get -infinity first. Without top-k / top-p / min-p it draws
 * from the softmax in id order (same distribution, no sort of the
 * vocabulary). Returns -1 when the mask allows none. */
int sampler_sample_masked(Sampler *s, float *logits, const uint32_t *mask);

/* Index of the largest value (the first one on ties, as torch.argmax). */
int argmax(const float *x, int n);

#endif
