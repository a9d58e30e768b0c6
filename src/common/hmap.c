#include <stdlib.h>
#include <string.h>

#include "evc/hmap.h"
#include "evc/xalloc.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t hash_u64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL; /* splitmix64 finaliser */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void hmap_init(struct hmap *m)
{
	memset(m, 0, sizeof(*m));
}

void hmap_free(struct hmap *m)
{
	free(m->v);
	hmap_init(m);
}

void hmap_clear(struct hmap *m)
{
	if (m->n > 0)
		memset(m->v, 0, m->cap * sizeof(*m->v));
	m->n = 0;
}

size_t hmap_count(const struct hmap *m)
{
	return m->n;
}

static int ent_eq(const struct hmap_ent *e, uint64_t h, uint64_t ukey, const char *skey)
{
	if (e->h != h)
		return 0;
	return skey ? e->skey && strcmp(e->skey, skey) == 0 : e->ukey == ukey;
}

static size_t slot_of(const struct hmap *m, uint64_t h, uint64_t ukey, const char *skey, int *found)
{
	size_t mask = m->cap - 1, i = (size_t)h & mask;
	while (m->v[i].val) {
		if (ent_eq(&m->v[i], h, ukey, skey)) {
			*found = 1;
			return i;
		}
		i = (i + 1) & mask;
	}
	*found = 0;
	return i;
}

static void put_h(struct hmap *m, uint64_t h, uint64_t ukey, const char *skey, void *val);

static void grow(struct hmap *m)
{
	struct hmap_ent *old = m->v;
	size_t oldcap = m->cap;
	m->cap = oldcap ? oldcap * 2 : 64;
	m->v = xcalloc(m->cap, sizeof(*m->v));
	m->n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].val)
			put_h(m, old[i].h, old[i].ukey, old[i].skey, old[i].val);
	free(old);
}

static void put_h(struct hmap *m, uint64_t h, uint64_t ukey, const char *skey, void *val)
{
	if ((m->n + 1) * 2 > m->cap)
		grow(m);
	int found;
	size_t i = slot_of(m, h, ukey, skey, &found);
	if (!found)
		m->n++;
	m->v[i] = (struct hmap_ent){ .h = h, .ukey = ukey, .skey = skey, .val = val };
}

static void *get_h(const struct hmap *m, uint64_t h, uint64_t ukey, const char *skey)
{
	if (!m->cap)
		return NULL;
	int found;
	size_t i = slot_of(m, h, ukey, skey, &found);
	return found ? m->v[i].val : NULL;
}

static void del_h(struct hmap *m, uint64_t h, uint64_t ukey, const char *skey)
{
	if (!m->cap)
		return;
	int found;
	size_t mask = m->cap - 1, i = slot_of(m, h, ukey, skey, &found);
	if (!found)
		return;
	m->v[i].val = NULL;
	m->n--;
	/* Shift later members of the probe run back so lookups never stop
	 * early at the hole. */
	for (size_t j = (i + 1) & mask; m->v[j].val; j = (j + 1) & mask) {
		size_t k = (size_t)m->v[j].h & mask;
		int movable = (i <= j) ? (k <= i || k > j) : (k <= i && k > j);
		if (movable) {
			m->v[i] = m->v[j];
			m->v[j].val = NULL;
			i = j;
		}
	}
}

void *hmap_sget(const struct hmap *m, const char *k) { return get_h(m, hash_str(k), 0, k); }
void hmap_sput(struct hmap *m, const char *k, void *v) { put_h(m, hash_str(k), 0, k, v); }
void hmap_sdel(struct hmap *m, const char *k) { del_h(m, hash_str(k), 0, k); }
void *hmap_uget(const struct hmap *m, uint64_t k) { return get_h(m, hash_u64(k), k, NULL); }
void hmap_uput(struct hmap *m, uint64_t k, void *v) { put_h(m, hash_u64(k), k, NULL, v); }
void hmap_udel(struct hmap *m, uint64_t k) { del_h(m, hash_u64(k), k, NULL); }

void *hmap_next(const struct hmap *m, size_t *i)
{
	for (; *i < m->cap; (*i)++)
		if (m->v[*i].val)
			return m->v[(*i)++].val;
	return NULL;
}
