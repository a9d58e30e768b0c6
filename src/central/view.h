/* What Central shows of its CPs (the panel, the API, the page): plain
 * struct cp_view copies made from the core on the main thread. The
 * captions are decided here, once, for every screen. */
#ifndef EVC_CENTRAL_VIEW_H
#define EVC_CENTRAL_VIEW_H
#include <stddef.h>

#include "evc/cpview.h"
#include "src/central/core.h"

/* Fill v from cp. */
void view_cp(const struct core_cp *cp, struct cp_view *v);
/* Every CP of the core, in id order, into *arr (grown as needed, caller
 * frees with free()); counts per state into counts when not NULL.
 * Returns how many. */
size_t view_all(const struct core *c, struct cp_view **arr, size_t *cap, size_t counts[CP_STATE_COUNT]);

#endif
