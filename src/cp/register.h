/* EV_CP_M --register (evcharging(7) SECURITY, EV_Registry(1)): register a
 * CP at EV_Registry over HTTPS with the installer token and keep the
 * answer as the CP's credential file. */
#ifndef EVC_CP_REGISTER_H
#define EVC_CP_REGISTER_H

#include "evc/cred.h"
#include "evc/err.h"

/* What POST /v1/cps answered. */
enum cp_register_result {
	CP_REGISTER_OK = 0,     /* 201: *out holds the id and the new secret */
	CP_REGISTER_EXISTS,     /* 409: the id is registered already */
	CP_REGISTER_REFUSED,    /* another HTTP status: err holds the registry's reason */
	CP_REGISTER_FAILED,     /* no answer (TLS verification, connection, ...): err says why */
};

/* POST base_url/v1/cps {"id","location","price"} with the installer token,
 * trusting only the CA certificates in ca_file and checking the registry's
 * name against its certificate. base_url must be https://HOST:PORT. err
 * never holds the token or the secret. out is wiped unless CP_REGISTER_OK;
 * the caller wipes it (cred_wipe) when done. */
enum cp_register_result cp_register(const char *base_url, const char *installer_token, const char *ca_file,
				    const char *cp_id, const char *location, double price, struct cred *out,
				    char err[EVC_ERR_LEN]);

/* 1 if the command line asks for --register. */
int cp_register_requested(int argc, char **argv);
/* The whole --register command: arguments, the request, the credential
 * file (cred_save, mode 0600), one line on stdout. Returns the exit
 * status: 0 registered, 1 refused or failed, 2 bad arguments. */
int cp_register_main(int argc, char **argv);

#endif
