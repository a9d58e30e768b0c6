/* One small hash map for the whole tree: open addressing, linear probing,
 * backward-shift deletion (no tombstones), power-of-two capacity kept at
 * most half full. Keys are strings or 64-bit integers (one kind per map);
 * values are non-NULL pointers. A string key is not copied: it must live
 * as long as its entry (point it into the value). Not thread-safe. */
#ifndef EVC_HMAP_H
#define EVC_HMAP_H
#include <stddef.h>
#include <stdint.h>

struct hmap_ent {
	uint64_t h;
	uint64_t ukey;
	const char *skey;
	void *val; /* NULL = empty slot */
};

struct hmap {
	struct hmap_ent *v;
	size_t cap, n;
};

/* An empty map (no memory until the first put). */
void hmap_init(struct hmap *m);
/* Free the table (not the values). The map is empty and usable again. */
void hmap_free(struct hmap *m);
/* Drop every entry, keep the table's memory (a map refilled each turn). */
void hmap_clear(struct hmap *m);
size_t hmap_count(const struct hmap *m);

void *hmap_sget(const struct hmap *m, const char *key);
void hmap_sput(struct hmap *m, const char *key, void *val); /* replaces */
void hmap_sdel(struct hmap *m, const char *key);
void *hmap_uget(const struct hmap *m, uint64_t key);
void hmap_uput(struct hmap *m, uint64_t key, void *val);
void hmap_udel(struct hmap *m, uint64_t key);

/* Walk: for (size_t i = 0; (v = hmap_next(m, &i)) != NULL;) ...; no put
 * or del while walking. */
void *hmap_next(const struct hmap *m, size_t *i);

#endif
