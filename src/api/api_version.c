/* api_version.c - duet_version(). */
#include "duet.h"
#include "util/version.h"

const char *duet_version(void) { return DUET_RELEASE; }
