# PGXS build of the extension: make && make install; make installcheck runs pg_regress
# against a running server (scripts/test.sh starts one). The C++ sources are every .cpp
# under src/: the same src/core files CMake builds for the unit tests, by the same rule
# (the directory is the list), so the two builds cannot drift apart.
EXTENSION = pg_orchestration
# One version, the control file's: the install script's name and the library's own
# (src/pg/extension_version.hpp: the library refuses another version's objects).
EXTVERSION := $(shell sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(EXTENSION).control)
$(if $(EXTVERSION),,$(error cannot read default_version from $(EXTENSION).control))
MODULE_big = pg_orchestration

SOURCES := $(sort $(shell find src -name '*.cpp'))
OBJS = $(SOURCES:.cpp=.o)

# The install script is assembled from extension/*.sql in file-name order: one file per
# concern (types, tenancy, registry, ...), one script for CREATE EXTENSION.
EXTENSION_SQL = $(EXTENSION)--$(EXTVERSION).sql
DATA_built = $(EXTENSION_SQL)
# Earlier versions' install scripts, kept as they were released, and the upgrade scripts
# between versions (test/integration/upgrade.sh proves each upgrade gives a fresh install).
DATA = $(sort $(wildcard extension/versions/*.sql))
EXTRA_CLEAN = $(EXTENSION_SQL)

# The regression database must exist, with the extension, before installcheck: the
# scheduler worker of the test cluster (scripts/cluster.sh) is connected to it, so
# pg_regress may not drop and recreate it (scripts/test.sh prepares it).
REGRESS = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --use-existing
override CONTRIB_TESTDB = orchestration_regress

PG_CONFIG ?= pg_config
PG_CXXFLAGS = -std=c++17 -fPIC -Wall -Wextra -Werror -Wno-missing-field-initializers \
              -Wno-register -Isrc
PG_CPPFLAGS = -Isrc -DORCH_EXTENSION_VERSION='"$(EXTVERSION)"'
SHLIB_LINK = -lstdc++ -lcurl -lnats -lre2

# No LLVM bitcode for C++ sources: JIT inlining of this code buys nothing.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Postgres's headers are not warning-clean C++; -isystem keeps -Werror for our code only.
%.o: %.cpp
	$(CXX) $(CXXFLAGS) -isystem $(includedir_server) $(CPPFLAGS) -c -o $@ $<

$(OBJS): $(shell find src -name '*.hpp')
src/pg/extension_version.o: $(EXTENSION).control

$(EXTENSION_SQL): $(sort $(wildcard extension/*.sql))
	cat $^ > $@

.PHONY: unit-tests
unit-tests:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug
	cmake --build build -j2
	ctest --test-dir build --output-on-failure
