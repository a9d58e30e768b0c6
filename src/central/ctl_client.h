/* The control socket's clients (EV_Central(1) CONTROL SOCKET):
 *   EV_Central ctl [--control PATH | --db PATH] [--json] COMMAND [ARGS]
 *   EV_Central attach [--control PATH | --db PATH] [--no-color]
 * ctl asks once and prints the answer (plain aligned text, or the JSON);
 * attach opens the panel (ui/panel.c) on a running Central. sessions is
 * read from the database with a read-only connection, not through
 * Central. Exit 0 ok, 1 refused or failed, 2 bad usage. */
#ifndef EVC_CENTRAL_CTL_CLIENT_H
#define EVC_CENTRAL_CTL_CLIENT_H

/* argv[0] is "ctl" / "attach". */
int ctl_client_main(int argc, char **argv);
int ctl_client_attach(int argc, char **argv);

#endif
