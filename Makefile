# duet - build with `make`, test with `make test`, sanitizers with `make asan`.
# Sources are found by directory: src/<stage>/*.c go into libduet.a, src/cli/*.c
# into the duet binary, tests/test_*.c each become one test program.
# Files named *_avx2.c, *_avx512.c, *_neon.c get their ISA flags here and are
# only called after a run-time CPU check (src/kern/cpu.c).

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Werror=vla -fopenmp-simd -fPIC -D_GNU_SOURCE -Iinclude -Isrc -pthread $(SAN)
LDFLAGS += $(SAN) -pthread
LDLIBS  += -lcjson -lpcre2-8 -lutf8proc -lxxhash -lm

MACHINE := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(MACHINE)))
  ISA_SRC = $(wildcard src/kern/*_avx2.c src/kern/*_avx512.c)
else ifneq (,$(findstring aarch64,$(MACHINE)))
  ISA_SRC = $(wildcard src/kern/*_neon.c)
endif

LIB_SRC  := $(filter-out %_avx2.c %_avx512.c %_neon.c,$(shell find src -name '*.c' ! -path 'src/cli/*' ! -path 'src/serve/*' | sort)) $(ISA_SRC)
# src/serve (the HTTP server, on libmicrohttpd) goes into the duet binary, not the library
CLI_SRC  := $(sort $(wildcard src/cli/*.c src/serve/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_UTIL:= $(filter-out tests/test_%.c,$(wildcard tests/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UOBJ:= $(TEST_UTIL:%.c=$(BUILD)/%.o)

all: $(BUILD)/duet $(BUILD)/libduet.so $(TEST_BIN) examples

# examples/*.c use include/duet.h only
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
examples: $(EXAMPLES)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(BUILD)/libduet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libduet.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# the same objects as a shared library, for the Python package (python/) and
# other languages' bindings; only the duet_* symbols of include/duet.h are exported
$(BUILD)/libduet.so: $(LIB_OBJ) include/duet.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libduet.so -Wl,--version-script=include/duet.map -o $@ $(LIB_OBJ) $(LDLIBS)

$(BUILD)/duet: $(CLI_OBJ) $(BUILD)/libduet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lmicrohttpd -ledit

# test helpers go in an archive so each test links only what it uses
$(BUILD)/tests/libtestutil.a: $(TEST_UOBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/libtestutil.a $(BUILD)/libduet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -mavx2 -mfma -mf16c -MMD -MP -c -o $@ $<
$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -MMD -MP -c -o $@ $<
$(BUILD)/%_neon.o: %_neon.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -march=armv8.2-a+dotprod+fp16 -MMD -MP -c -o $@ $<
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# the objects of tests and examples are built by a chain of pattern rules;
# without this make deletes them as intermediates and rebuilds them next time
.SECONDARY: $(TEST_BIN:%=%.o) $(EXAMPLES:%=%.o)

test: all
	@BUILD=$(BUILD) sh tests/run.sh

# make install PREFIX=/usr/local (DESTDIR for packaging): the duet binary,
# libduet.so and libduet.a, include/duet.h and a pkg-config file (duet.pc)
PREFIX ?= /usr/local
install: $(BUILD)/duet $(BUILD)/libduet.so $(BUILD)/libduet.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/duet $(DESTDIR)$(PREFIX)/bin/duet
	install -m 755 $(BUILD)/libduet.so $(DESTDIR)$(PREFIX)/lib/libduet.so
	install -m 644 $(BUILD)/libduet.a $(DESTDIR)$(PREFIX)/lib/libduet.a
	install -m 644 include/duet.h $(DESTDIR)$(PREFIX)/include/duet.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e "s|@VERSION@|$$(sed -n 's/^#define DUET_VERSION "\(.*\)"$$/\1/p' include/duet.h)|" \
	    include/duet.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/duet.pc

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

# ThreadSanitizer on the tests that drive the library from several threads
# (the scheduler, per-thread errors, abort + close); a race fails the run
TSAN_TESTS = test_concurrency
tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread" $(TSAN_TESTS:%=build-tsan/tests/%)
	@for t in $(TSAN_TESTS); do DUET_TEST_NO_TIMING=1 TSAN_OPTIONS="halt_on_error=1 exitcode=66" build-tsan/tests/$$t || exit 1; done

clean:
	rm -rf build build-asan build-tsan build-arm64

.PHONY: all test asan tsan clean examples install
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The demo: the small model train/ made (demo/base + PEFT adapters demo/tools
# and demo/shell) compiled q4 with a calibration set into one .duet, then a
# tool call, a command explanation and a man page continuation (demo/demo.sh).
demo: $(BUILD)/duet
	sh demo/demo.sh $(BUILD)/duet $(BUILD)/demo.duet
.PHONY: demo
