/* api_adapter.c - adapters attached to and removed from a running model.
 * The model's adapter array is given room for DUET_MAX_ADAPTERS slots at
 * open, so the Adapter pointers the scheduler puts in batch rows never move.
 * Each slot counts the sessions bound to it; an unloaded adapter can no
 * longer be picked, and its memory is freed when its last session lets go,
 * so a request in flight keeps the adapter it started with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

int api_adapter_reserve(duet_model *m, Err *e)
{
    if (m->m.n_adapters > DUET_MAX_ADAPTERS)
        return err_set(e, "%d adapters: at most %d fit one model", m->m.n_adapters, DUET_MAX_ADAPTERS);
    Adapter *a = realloc(m->m.adapters, DUET_MAX_ADAPTERS * sizeof *a);
    if (!a) return err_set(e, "out of memory");
    memset(a + m->m.n_adapters, 0, (size_t)(DUET_MAX_ADAPTERS - m->m.n_adapters) * sizeof *a);
    m->m.adapters = a;
    return 0;
}

/* Slot of the live adapter `name`, or -1 (model lock held). */
static int find_live(const duet_model *m, const char *name)
{
    for (int i = 0; i < m->m.n_adapters; i++)
        if (m->ad_gone[i] == AD_LIVE && !strcmp(m->m.adapters[i].name, name)) return i;
    return -1;
}

int api_adapter_ref(duet_model *m, const char *name)
{
    if (!name) return -1;
    pthread_mutex_lock(&m->lock);
    int i = find_live(m, name);
    if (i >= 0) m->ad_refs[i]++;
    pthread_mutex_unlock(&m->lock);
    if (i < 0) return api_merr(m, DUET_ERR_NOT_FOUND, "no adapter named \"%s\"", name);
    return i;
}

void api_adapter_unref(duet_model *m, int idx)
{
    if (idx < 0) return;
    pthread_mutex_lock(&m->lock);
    if (--m->ad_refs[idx] == 0 && m->ad_gone[idx] == AD_UNLOADED) {
        adapter_free(&m->m.adapters[idx]);
        m->ad_gone[idx] = AD_FREE;
    }
    pthread_mutex_unlock(&m->lock);
}

int duet_model_load_adapter(duet_model *m, const char *name, const char *dir)
{
    if (!m || !name || !dir || !name[0]) return api_merr(m, DUET_ERR_ARG, "load_adapter: NULL or empty argument");
    pthread_mutex_lock(&m->lock);
    int used = find_live(m, name) >= 0;
    pthread_mutex_unlock(&m->lock);
    if (used) return api_merr(m, DUET_ERR_ARG, "adapter name \"%s\" is already loaded", name);
    /* read and prepare outside the lock: the scheduler keeps running */
    Adapter a;
    Err e;
    if (model_load_lora(&m->m, &a, dir, name, &e))
        return api_merr(m, strstr(e.msg, "cannot open") || strstr(e.msg, "No such") ? DUET_ERR_IO : DUET_ERR_FORMAT, "%s",
                        e.msg);
    pthread_mutex_lock(&m->lock);
    int slot = -1, rc = DUET_OK;
    if (find_live(m, name) >= 0) {
        rc = api_merr(m, DUET_ERR_ARG, "adapter name \"%s\" is already loaded", name);
    } else {
        for (int i = 0; i < m->m.n_adapters && slot < 0; i++)
            if (m->ad_gone[i] == AD_FREE) slot = i;
        if (slot < 0 && m->m.n_adapters < DUET_MAX_ADAPTERS) slot = m->m.n_adapters++;
        if (slot < 0) rc = api_merr(m, DUET_ERR_BUDGET, "%d adapters are loaded or in use: unload one first", DUET_MAX_ADAPTERS);
    }
    if (slot >= 0) {
        m->m.adapters[slot] = a;
        m->ad_gone[slot] = AD_LIVE;
        m->ad_refs[slot] = 0;
    }
    pthread_mutex_unlock(&m->lock);
    if (rc) adapter_free(&a);
    return rc;
}

int duet_model_unload_adapter(duet_model *m, const char *name)
{
    if (!m || !name) return api_merr(m, DUET_ERR_ARG, "unload_adapter: NULL argument");
    pthread_mutex_lock(&m->lock);
    int i = find_live(m, name);
    if (i >= 0) {
        if (m->ad_refs[i] == 0) {
            adapter_free(&m->m.adapters[i]);
            m->ad_gone[i] = AD_FREE;
        } else {
            m->ad_gone[i] = AD_UNLOADED;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return i < 0 ? api_merr(m, DUET_ERR_NOT_FOUND, "no adapter named \"%s\"", name) : DUET_OK;
}
