/* version.h - the release of this source tree, for the library's code below
 * the public API (include/duet.h's DUET_VERSION must say the same: the CLI
 * test checks `duet --version` against the generator a compile writes). */
#ifndef DUET_UTIL_VERSION_H
#define DUET_UTIL_VERSION_H

#define DUET_RELEASE "0.2.0"

#endif
