/* The web page (ui/web/index.html), turned into bytes at build time by the
 * rule in src/central/api.mk, so the binary needs no file at run time. */
#ifndef EVC_CENTRAL_API_PAGE_H
#define EVC_CENTRAL_API_PAGE_H
#include <stddef.h>

extern const unsigned char api_page_html[];
extern const size_t api_page_len;

#endif
