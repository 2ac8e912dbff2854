# epcap for Python: every entry point. `make help` lists the targets.

PYTHON    ?= python3
CC        ?= cc
SANDBOX   ?= seccomp
PREFIX    ?= /usr/local
DESTDIR   ?=
PRIVMODE  ?= caps
# make install (client/epcap/admin.py, as epcap-admin): who may run the
# helper (root:GROUP, mode 0750), who may send packets with it (empty: root
# only), the largest kernel buffer a caller who is not root may ask for
# (empty: epcap-admin's default, 256 MiB), and
# the build installed (the tests install the test-hook and sanitized builds,
# with TEST_INSTALL=1).
GROUP        ?= epcap
INJECT_GROUP ?=
MAX_BUFFER   ?=
INSTALL_FROM ?= $(HELPER)
# Where the helpers are built; a wheel build (setup.py) passes a directory of
# its own, and DEPS=check: missing packages are named, never installed.
BUILDDIR  ?= priv
DEPS      ?= install
SOAK_SECONDS ?= 60
VENV      := .venv
VPY       := $(VENV)/bin/python

# Debian packages the build needs, and those the tests need on top.
SYSTEM_PACKAGES := gcc make pkg-config libpcap-dev libmsgpack-dev libseccomp-dev
# openssh-server and openssh-client: the remote-capture tests run sshd in
# network namespaces of their own (tests/sshhosts.py), never the machine's.
TEST_PACKAGES   := sudo libcap2-bin iproute2 tcpdump strace openssh-server openssh-client
BENCH_PACKAGES  := tcpdump tcpreplay
# The client's C accelerator (client/epcap/_speedups.c, built by pip through
# setup.py) needs Python's headers: Debian's python3-dev, unless PYTHON has
# its own (a pyenv or source build). Only the venv asks for them: a wheel
# build without them builds the helper and leaves the accelerator out.
# Expanded where used, so that other targets spawn no Python for it.
PY_INCLUDE = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
PYTHON_PACKAGES = $(if $(wildcard $(PY_INCLUDE)/Python.h),,python3-dev)
# clang, with its sanitizer and libFuzzer runtimes (a Recommends of clang).
CLANG_PACKAGES  := clang libclang-rt-dev

PKGS      := libpcap msgpack libseccomp
CFLAGS    ?= -O2 -g
CWARN     := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wformat=2 -Wshadow
CFLAGS    += $(CWARN) -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
# PROTOCOL_VERSION=N: a helper that says it speaks another version (tests).
CFLAGS    += $(if $(PROTOCOL_VERSION),-DEPCAPD_PROTOCOL_VERSION=$(PROTOCOL_VERSION))
LDFLAGS   += -pie -Wl,-z,relro,-z,now
# The helper's units but main and the sandbox backend (the fuzz harnesses
# link these too).
CORE_SRCS := epcapd/invoker.c epcapd/policy.c epcapd/options.c epcapd/privdrop.c \
             epcapd/capture.c epcapd/fanout.c epcapd/wire.c epcapd/fatal.c epcapd/frame.c \
             epcapd/loop.c epcapd/rlimits.c
SRCS      := epcapd/epcapd.c $(CORE_SRCS) epcapd/sandbox_$(SANDBOX).c

# SANITIZE=1 builds the helpers with AddressSanitizer and UBSan (clang,
# unless CC is given): for tests, never for an install. epcapd/sanitize.c
# sets the runtime's defaults; EPCAPD_SANITIZE adapts the sandbox to it.
SANITIZE  ?=
SANITIZERS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ifeq ($(SANITIZE),1)
ifeq ($(origin CC),default)
CC        := clang
endif
CFLAGS    += $(SANITIZERS) -O1 -g -DEPCAPD_SANITIZE
LDFLAGS   += $(SANITIZERS)
SRCS      += epcapd/sanitize.c
ifneq ($(findstring clang,$(CC)),)
SYSTEM_PACKAGES += $(CLANG_PACKAGES)
endif
endif
HELPER    := $(BUILDDIR)/epcapd
TESTHOOK  := $(BUILDDIR)/epcapd-testhook
LIBS       = $$(pkg-config --libs $(PKGS))

# PFRING=/path/to/PF_RING/userland links PF_RING's libpcap instead, and
# cluster_id joins a PF_RING cluster, as epcap does (not tested here).
ifdef PFRING
CFLAGS    += -DHAVE_PFRING -I$(PFRING)/libpcap -I$(PFRING)/lib
LIBS       = $(PFRING)/libpcap/libpcap.a $(PFRING)/lib/libpfring.a -lmsgpackc -lseccomp -lpthread -lrt
endif
# libFuzzer harnesses (make fuzz, epcapd/fuzz/): the helper's own sources
# without main and without a sandbox, built with -DEPCAPD_FUZZ so that die()
# returns to the harness. Scratch corpora and logs go to priv/fuzz/.
FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 60
FUZZ_HARNESSES := commands options policy
FUZZ_DIR       := priv/fuzz
FUZZ_SRCS      := $(CORE_SRCS) epcapd/sandbox_null.c
FUZZ_CFLAGS    := $(CWARN) -O1 -g -fno-omit-frame-pointer -DEPCAPD_FUZZ \
                  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_BINS      := $(FUZZ_HARNESSES:%=$(FUZZ_DIR)/fuzz_%)

# Rebuild when the compiler, the flags or SANDBOX change.
STAMP     := $(BUILDDIR)/.build-flags

.PHONY: all help deps deps-test deps-python deps-fuzz install-packages build install uninstall venv sniff test soak \
        lint bench fuzz clean FORCE

all: build

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## install the Debian packages the build needs (as root), or print the command
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(SYSTEM_PACKAGES)"

deps-test: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(TEST_PACKAGES)"

deps-python: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(PYTHON_PACKAGES)"

deps-fuzz: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(CLANG_PACKAGES)"

# No service starts while these install: a policy-rc.d (exit 101: "action
# forbidden", which invoke-rc.d and deb-systemd-invoke obey) for the
# install's length, unless the machine has one. openssh-server's postinst
# would otherwise start sshd on the machine's own port 22; and its service,
# which the postinst enables, is disabled after (else sshd starts at the
# next boot). An openssh-server the machine already had is left as it was.
install-packages:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	[ "$(DEPS)" = check ] || $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  missing="$$missing python3-venv"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ] || [ "$(DEPS)" = check ]; then \
	  echo "Missing Debian packages:$$missing"; \
	  echo "Install them with:  sudo apt-get install -y$$missing"; exit 1; \
	fi; \
	echo "Installing Debian packages:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
	  trap 'rm -f /usr/sbin/policy-rc.d' EXIT; trap 'exit 130' HUP INT TERM; \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; \
	fi; \
	apt-get update -q && apt-get install -y -q --no-install-recommends $$missing || exit $$?; \
	case " $$missing " in *" openssh-server "*) \
	  echo "Disabling the ssh service that openssh-server enabled: the tests run sshd of their own"; \
	  if command -v systemctl >/dev/null; then systemctl disable -q ssh.service; \
	  else update-rc.d ssh disable; fi || exit $$?;; \
	esac

build: $(HELPER) priv/empty ## build the helper priv/epcapd (SANDBOX=seccomp|rlimit|null; SANITIZE=1: ASan+UBSan)

$(STAMP): FORCE
	@mkdir -p $(BUILDDIR)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS) $(SRCS)' | cmp -s - $@ || \
	  echo '$(CC) $(CFLAGS) $(LDFLAGS) $(SRCS)' > $@

$(HELPER): $(SRCS) epcapd/epcapd.h $(STAMP) | deps
	$(CC) $(CFLAGS) $$(pkg-config --cflags $(PKGS)) -o $@ $(SRCS) $(LDFLAGS) $(LIBS)

# A test-only build (epcapd/testhook.c): it reports its credentials at
# pcap_activate() and can make a forbidden call after ready, proof that the
# sandbox bites. Installed only by the tests, into a temporary prefix.
$(TESTHOOK): $(SRCS) epcapd/testhook.c epcapd/epcapd.h $(STAMP) | deps
	$(CC) $(CFLAGS) -DEPCAPD_TEST_HOOK $$(pkg-config --cflags $(PKGS)) -o $@ $(SRCS) \
	  epcapd/testhook.c $(LDFLAGS) $(LIBS)

# The default chroot: an empty directory beside the helper, never writable.
priv/empty:
	install -d -m 0755 $@

install: build $(INSTALL_FROM) ## as root: epcap-admin install of this build in PREFIX/lib/epcap (PRIVMODE=caps|setuid|sudo, GROUP=epcap)
	$(PYTHON) client/epcap/admin.py install --mode $(PRIVMODE) --prefix $(PREFIX) \
	  --root '$(DESTDIR)' --group $(GROUP) --helper $(INSTALL_FROM) \
	  $(if $(INJECT_GROUP),--inject-group $(INJECT_GROUP)) $(if $(MAX_BUFFER),--max-buffer $(MAX_BUFFER)) $(if $(filter 1,$(TEST_INSTALL)),--test-install)

uninstall: ## as root: epcap-admin uninstall: remove what make install put in PREFIX
	$(PYTHON) client/epcap/admin.py uninstall --prefix $(PREFIX) --root '$(DESTDIR)'

venv: $(VENV)/.installed ## make .venv with the package and its test tools

$(VENV)/.installed: pyproject.toml setup.py client/epcap/_speedups.c | deps deps-python
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

sniff: build venv ## show real packets: live on lo with privilege, else a sample file
	$(VENV)/bin/epcap-sniff --demo

test: build $(TESTHOOK) venv deps-test ## run the whole test suite
	$(VPY) -m pytest $(PYTEST_ARGS)

soak: build venv deps-test ## as root: a seeded storm of captures, floods, commands and kills (SOAK_SECONDS=60)
	@[ "$$(id -u)" -eq 0 ] || { echo "make soak must run as root: it captures live on lo"; exit 1; }
	$(VPY) tests/soak/soak.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

bench: build venv deps-test ## as root: epcap against pypcap, pcapy-ng, dpkt, scapy, tcpdump
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BENCH_PACKAGES)"
	$(VPY) -m pip install -q -e '.[bench]'
	cd tests/bench && ../../$(VPY) bench.py $(BENCH_ARGS)

$(FUZZ_DIR)/fuzz_%: epcapd/fuzz/fuzz_%.c $(FUZZ_SRCS) epcapd/epcapd.h | deps-fuzz
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $$(pkg-config --cflags $(PKGS)) -o $@ $< $(FUZZ_SRCS) \
	  $$(pkg-config --libs $(PKGS))

fuzz: $(FUZZ_BINS) ## run each libFuzzer harness for FUZZ_SECONDS (60) and print its coverage
	epcapd/fuzz/run $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

lint: venv ## ruff and mypy --strict on the client and the tests; the accelerator with -Werror
	$(CC) $(CWARN) -fsyntax-only -I$(PY_INCLUDE) client/epcap/_speedups.c
	$(VENV)/bin/ruff check client tests setup.py
	$(VENV)/bin/ruff format --check client tests setup.py
	$(VENV)/bin/mypy client/epcap

clean: ## remove build products (keeps .venv)
	rm -rf $(HELPER) $(TESTHOOK) $(STAMP) priv/empty $(FUZZ_DIR) build \
	  client/*.egg-info client/epcap/_speedups*.so
