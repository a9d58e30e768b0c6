/* The look shared by every screen of the family (the Central panel and the
 * small screens of EV_CP_E, EV_CP_M and EV_Driver): colours by meaning,
 * NO_COLOR / --no-color monochrome, and line drawing that is UTF-8 only
 * when the locale is UTF-8 (ASCII otherwise).
 *
 * Order of calls: theme_locale_init() before initscr(), theme_init() after
 * initscr() (and start_color is done there). All on the curses thread. */
#ifndef EVC_UI_THEME_H
#define EVC_UI_THEME_H
#include <curses.h>

#include "evc/state.h"

/* Meanings, not colours: a screen asks for "bad", the theme decides how
 * that looks on this terminal. */
enum theme_role {
	THEME_NORMAL,
	THEME_OK,       /* green: ACTIVADO, healthy, connected */
	THEME_BUSY,     /* green, emphasised: SUMINISTRANDO, supplying */
	THEME_WARN,     /* orange (208) or yellow: FUERA_DE_SERVICIO, stopped */
	THEME_BAD,      /* red: AVERIADO, errors */
	THEME_OFF,      /* grey: DESCONECTADO, unknown */
	THEME_RESERVED, /* cyan: RESERVADO, waiting */
	THEME_TITLE,    /* header line */
	THEME_BAR,      /* key-hint bar, command line */
	THEME_KEY,      /* a key name inside the bar */
	THEME_DIM,      /* secondary text */
	THEME_ERRTEXT,  /* error text on the normal background */
	THEME_WARNTEXT, /* warning text on the normal background */
	THEME_OKTEXT,   /* success text on the normal background */
	THEME_ROLE_COUNT
};

/* setlocale(LC_CTYPE, "") (never LC_NUMERIC: numbers on the wire keep
 * their '.') and remember whether the codeset is UTF-8.
 * Call once, before initscr(). Safe to call again (no-op). */
void theme_locale_init(void);
/* 1 if the locale's codeset is UTF-8 (after theme_locale_init). */
int theme_is_utf8(void);

/* Set up colours after initscr(). Monochrome when no_color is set, when
 * the environment has a non-empty NO_COLOR, or when the terminal has no
 * colours. Returns 1 if colours are in use, 0 if monochrome. */
int theme_init(int no_color);
/* 1 when colours are in use (after theme_init). */
int theme_has_color(void);
/* 1 if the environment asks for no colour (NO_COLOR set and non-empty). */
int theme_env_no_color(void);

/* Attribute (colour pair and/or video attributes) for a role. In
 * monochrome the roles still differ where it helps (bold, reverse, dim). */
attr_t theme_attr(enum theme_role role);
/* The role and attribute of a CP state (evcharging(7) STATES AND COLOURS). */
enum theme_role theme_state_role(enum cp_state st);
attr_t theme_state_attr(enum cp_state st);
/* The exact state word ("FUERA_DE_SERVICIO", ...). Never NULL. */
const char *theme_state_word(enum cp_state st);
/* A human gloss for the state ("Out of Order" for FUERA_DE_SERVICIO,
 * "Charging", ...). Never NULL. */
const char *theme_state_label(enum cp_state st);
/* One letter per state for very small cells (A, R, S, F, X, D): readable
 * without colour. */
char theme_state_letter(enum cp_state st);

/* Line drawing: UTF-8 box characters when the locale is UTF-8, ASCII
 * (+ - |) otherwise. Coordinates are the window's; clipped to it. */
void theme_box(WINDOW *w, int y, int x, int h, int wd, attr_t attr);
void theme_hline(WINDOW *w, int y, int x, int n, attr_t attr);
void theme_vline(WINDOW *w, int y, int x, int n, attr_t attr);
/* Fill a rectangle with blanks in attr (a card's background colour). */
void theme_fill(WINDOW *w, int y, int x, int h, int wd, attr_t attr);
/* Write at most n columns of s at y,x (NUL- or width-limited; never wraps). */
void theme_puts(WINDOW *w, int y, int x, int n, const char *s, attr_t attr);

#endif
