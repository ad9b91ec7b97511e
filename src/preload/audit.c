/*
 * audit.c - libpglease_audit.so: the preload shim for programs that load
 * libpq at run time (psycopg 3, cffi, ctypes, FFI bindings).
 *
 * A program that dlopen()s libpq and asks dlsym(handle, "PQconnectdb")
 * gets libpq's own function: a lookup on a handle never sees what
 * LD_PRELOAD put in the global scope.  The dynamic linker's audit
 * interface (LD_AUDIT, rtld-audit(7)) sees every binding to libpq, through
 * dlsym or a PLT alike, and may answer another address: this library
 * answers the preloaded shim's definition of every PQ* function the shim
 * interposes, and leaves every other binding as it was.
 *
 * It runs in a link-map namespace of its own (its own libc too), so it
 * calls nothing of the shim: it reads the shim's dynamic symbol table from
 * the link map la_objopen() reports.  Only bindings to libpq are audited
 * (libpq BINDTO, the objects that need it BINDFROM); bindings the shim
 * itself makes are left alone, or its dlsym(RTLD_NEXT) of the real libpq
 * would be sent back to itself.  The same holds for RTLD_DEEPBIND objects
 * (PHP's extensions), which bind to libpq before any preloaded library.
 */
#define _GNU_SOURCE 1
#include <elf.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if __ELF_NATIVE_CLASS == 64
#define SYM_TYPE(info) ELF64_ST_TYPE(info)
#else
#define SYM_TYPE(info) ELF32_ST_TYPE(info)
#endif

#define SHIM_NAME "libpglease_preload.so"
#define LIBPQ_NAME "libpq.so"

static uintptr_t libpq_cookie;		/* &libpq's link_map, 0 until it is loaded */
static struct link_map *shim;		/* the preloaded shim, in the base namespace */

/* The symbol table of an object, from its dynamic section (GNU hash). */
struct symtab {
	const ElfW(Sym) *sym;
	const char *str;
	const uint32_t *gnu_hash;
	ElfW(Addr) base;
	bool ok;
};

static struct symtab shim_syms;

/* d_ptr values are already relocated, except on the few targets that do not. */
static ElfW(Addr)
dyn_ptr(const struct link_map *map, ElfW(Addr) p)
{
	return p < map->l_addr ? map->l_addr + p : p;
}

static void
load_symtab(struct link_map *map, struct symtab *t)
{
	memset(t, 0, sizeof(*t));
	t->base = map->l_addr;
	for (const ElfW(Dyn) *d = map->l_ld; d != NULL && d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB:
			t->sym = (const ElfW(Sym) *)dyn_ptr(map, d->d_un.d_ptr);
			break;
		case DT_STRTAB:
			t->str = (const char *)dyn_ptr(map, d->d_un.d_ptr);
			break;
		case DT_GNU_HASH:
			t->gnu_hash = (const uint32_t *)dyn_ptr(map, d->d_un.d_ptr);
			break;
		default:
			break;
		}
	}
	t->ok = t->sym != NULL && t->str != NULL && t->gnu_hash != NULL;
}

static uint32_t
gnu_hash(const char *s)
{
	uint32_t h = 5381;

	for (; *s != '\0'; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

/* The address of the defined function name in t, or 0. */
static uintptr_t
lookup(const struct symtab *t, const char *name)
{
	if (!t->ok)
		return 0;
	const uint32_t nbuckets = t->gnu_hash[0], symoffset = t->gnu_hash[1];
	const uint32_t bloom_size = t->gnu_hash[2];
	const ElfW(Addr) *bloom = (const ElfW(Addr) *)(t->gnu_hash + 4);
	const uint32_t *buckets = (const uint32_t *)(bloom + bloom_size);
	const uint32_t *chain = buckets + nbuckets;
	uint32_t h = gnu_hash(name);

	if (nbuckets == 0)
		return 0;
	for (uint32_t i = buckets[h % nbuckets]; i >= symoffset && i != 0; i++) {
		uint32_t ch = chain[i - symoffset];
		const ElfW(Sym) *s = &t->sym[i];
		if ((ch | 1) == (h | 1) && strcmp(t->str + s->st_name, name) == 0 &&
		    s->st_shndx != SHN_UNDEF && SYM_TYPE(s->st_info) == STT_FUNC)
			return t->base + s->st_value;
		if (ch & 1)
			break;
	}
	return 0;
}

/* Whether the object names libpq among the libraries it needs (DT_NEEDED). */
static bool
needs_libpq(const struct link_map *map)
{
	const char *str = NULL;

	for (const ElfW(Dyn) *d = map->l_ld; d != NULL && d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_STRTAB)
			str = (const char *)dyn_ptr(map, d->d_un.d_ptr);
	if (str == NULL)
		return false;
	for (const ElfW(Dyn) *d = map->l_ld; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_NEEDED &&
		    strncmp(str + d->d_un.d_val, LIBPQ_NAME, sizeof(LIBPQ_NAME) - 1) == 0)
			return true;
	return false;
}

/* The last component of a path. */
static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

unsigned int
la_version(unsigned int version)
{
	return version < LAV_CURRENT ? version : LAV_CURRENT;
}

unsigned int
la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie)
{
	const char *name = base_name(map->l_name != NULL ? map->l_name : "");

	if (lmid != LM_ID_BASE)
		return 0;
	*cookie = (uintptr_t)map;
	if (strncmp(name, SHIM_NAME, sizeof(SHIM_NAME) - 1) == 0) {
		shim = map;
		load_symtab(map, &shim_syms);
		return 0;
	}
	/*
	 * A dlsym() on libpq is reported when libpq is marked BINDTO, whoever
	 * asks.  A PLT or load-time binding is reported only from an object
	 * marked BINDFROM: those that need libpq (PHP's pgsql.so, loaded with
	 * RTLD_DEEPBIND, binds to libpq's own functions before any preloaded
	 * one).  Nothing else is audited, so other libraries pay nothing.
	 */
	if (strncmp(name, LIBPQ_NAME, sizeof(LIBPQ_NAME) - 1) == 0) {
		libpq_cookie = (uintptr_t)map;
		return LA_FLG_BINDTO;
	}
	return needs_libpq(map) ? LA_FLG_BINDFROM : 0;
}

uintptr_t
la_symbind64(ElfW(Sym) *sym, unsigned int ndx, uintptr_t *refcook, uintptr_t *defcook,
	     unsigned int *flags, const char *symname)
{
	(void)ndx;
	(void)flags;
	/* The shim's own lookups of the real libpq (dlsym RTLD_NEXT) stay real. */
	if (shim != NULL && *defcook == libpq_cookie && libpq_cookie != 0 &&
	    *refcook != (uintptr_t)shim && symname[0] == 'P' && symname[1] == 'Q') {
		uintptr_t mine = lookup(&shim_syms, symname);
		if (mine != 0)
			return mine;
	}
	return sym->st_value;
}
