/* The Kafka messages of evcharging(7) KAFKA TOPICS AND MESSAGES, as C structs, encoded and
 * decoded with jansson (CONSUMO_UPDATE and NETWORK_STATUS_UPDATE are written
 * by a hand-rolled writer: see msg_encode_ref). Decoding checks required fields and their types,
 * ignores unknown fields, bounds numbers and string lengths, and says in
 * plain words why a message was rejected. */
#ifndef EVC_MSG_H
#define EVC_MSG_H
#include <stddef.h>
#include <stdint.h>
#include "evc/err.h"

#define MSG_ID_MAX 64      /* user_id, session_id, request_id: bytes */
#define MSG_CP_ID_MAX 32   /* cp_id: ^[A-Za-z0-9_-]{1,32}$ */
#define MSG_TEXT_MAX 256   /* message, reason: bytes */
#define MSG_LOCATION_MAX 256 /* bytes (64 UTF-8 characters at most 4 bytes each) */
#define MSG_STATUS_MAX 10000 /* cps in one NETWORK_STATUS_UPDATE */

/* Topic base names (before --topic-prefix). */
#define MSG_TOPIC_DRIVER_REQUESTS "driver_requests"
#define MSG_TOPIC_CP_TELEMETRY "cp_telemetry"
#define MSG_TOPIC_DRIVER_NOTIFICATIONS "driver_notifications"
#define MSG_TOPIC_NETWORK_STATUS "network_status"

enum msg_topic {
	MSG_T_DRIVER_REQUESTS,
	MSG_T_CP_TELEMETRY,
	MSG_T_DRIVER_NOTIFICATIONS,
	MSG_T_NETWORK_STATUS,
};

enum msg_type {
	/* driver_requests */
	MSG_REQUEST_CHARGE,
	MSG_DRIVER_QUIT,
	/* cp_telemetry */
	MSG_SESSION_STARTED,
	MSG_CONSUMO,
	MSG_SUPPLY_END,
	MSG_AVERIADO,
	MSG_CONEXION_PERDIDA,
	/* driver_notifications */
	MSG_AUTH_OK,
	MSG_AUTH_DENIED,
	MSG_CONSUMO_UPDATE,
	MSG_TICKET,
	MSG_SUPPLY_ERROR,
	MSG_SESSION_CANCELLED,
	/* network_status */
	MSG_NETWORK_STATUS_UPDATE,
	MSG_TYPE_COUNT
};

struct msg_cp_status {
	char id[MSG_CP_ID_MAX + 1];
	char status[24];                     /* DESCONECTADO, ACTIVADO, ... */
	char location[MSG_LOCATION_MAX + 1];
	double price;
};

/* One message. Which fields matter depends on type (evcharging(7) KAFKA TOPICS AND MESSAGES); the
 * others are zero / empty. has_* flags say whether an optional field was
 * present when decoding, and whether to emit it when encoding. */
struct msg {
	enum msg_type type;
	char user_id[MSG_ID_MAX + 1];
	char cp_id[MSG_CP_ID_MAX + 1];
	char session_id[MSG_ID_MAX + 1];
	char request_id[MSG_ID_MAX + 1];   /* REQUEST_CHARGE and every driver_notifications type, optional */
	char origin[16];                   /* REQUEST_CHARGE, optional: "driver" | "cp" */
	char message[MSG_TEXT_MAX + 1];    /* AUTH_OK */
	char reason[MSG_TEXT_MAX + 1];     /* AUTH_DENIED, SUPPLY_ERROR, SESSION_CANCELLED */
	char component[16];                /* CONEXION_PERDIDA: "MONITOR" */
	double timestamp;                  /* REQUEST_CHARGE (required), NETWORK_STATUS_UPDATE; optional elsewhere */
	uint64_t seq;                      /* telemetry: 1, 2, 3... */
	double kwh, importe, kw;           /* telemetry, CONSUMO_UPDATE, TICKET */
	double price;                      /* TICKET */
	double started_at, ended_at;       /* TICKET */
	double kwh_partial, importe_partial; /* SUPPLY_ERROR */
	int has_session_id, has_request_id, has_origin, has_timestamp, has_seq, has_kw;
	/* NETWORK_STATUS_UPDATE: owned array, freed by msg_free */
	struct msg_cp_status *cps;
	size_t ncps;
};

/* Zero a message and set its type. */
void msg_init(struct msg *m, enum msg_type type);
/* Free what a decoded or built message owns (cps); m can be reused. */
void msg_free(struct msg *m);
/* Decode one JSON value read from the given topic. On success returns 0 and
 * fills *m (caller frees with msg_free). On rejection returns -1, *m holds
 * nothing to free, and err says why ("missing field 'cp_id'", "field 'kwh'
 * must be a number", "unknown type 'FOO' on cp_telemetry", ...). On
 * driver_requests an absent "type" means REQUEST_CHARGE. json needs no NUL
 * terminator: exactly len bytes are read.
 * Rules (the encoder applies the same ones): a JSON null counts as absent;
 * duplicate keys, trailing bytes, invalid UTF-8 and \u0000 are rejected;
 * numbers must be finite and within 0..bound (kwh 100000, importe 1e7, kw
 * 1000, price 100, times 1e10); seq is an integer >= 1 (an integral real is
 * accepted); ids as msg_valid_*; message/reason/location must hold no
 * control character (they reach terminals) and fit their byte limits,
 * location at most 64 characters; nothing is ever truncated. */
int msg_decode(enum msg_topic topic, const char *json, size_t len, struct msg *m, char err[EVC_ERR_LEN]);
/* Encode to compact JSON with exactly evcharging(7)'s field names (and the
 * type's topic-wide fields: driver_notifications always carry target_driver
 * = user_id). Returns a NUL-terminated string (caller frees with free()),
 * *len set if len is not NULL; NULL with err filled if the message breaks a
 * bound (so nothing invalid is ever produced). Numbers are printed as JSON
 * reals with at most 15 significant digits after rounding: kwh, kw and
 * kwh_partial to 3 decimals (Wh, W), importe and importe_partial to 2
 * (cents), prices to 4, timestamp/started_at/ended_at to 3 (ms). So 0.1
 * prints as 0.1 and 1699999999 as 1699999999.0, and decoding what was
 * printed gives back the rounded value exactly. Always emitted, whatever
 * the has_* flags say: timestamp on REQUEST_CHARGE and
 * NETWORK_STATUS_UPDATE; session_id and seq on every telemetry message; kw
 * on CONSUMO and CONSUMO_UPDATE; message on AUTH_OK (may be ""). Elsewhere
 * optional fields follow has_session_id/has_timestamp/has_kw/... Keys come out in
 * evcharging(7)'s order (type first). Field rules are the same as
 * msg_decode's, so anything decoded re-encodes. */
char *msg_encode(const struct msg *m, size_t *len, char err[EVC_ERR_LEN]);
/* The same through jansson for every type. msg_encode writes
 * CONSUMO_UPDATE and NETWORK_STATUS_UPDATE by hand (the hot shapes of a
 * telemetry flood) and hands every other type to this one; the two agree
 * on what they refuse and give JSON that parses to equal values. */
char *msg_encode_ref(const struct msg *m, size_t *len, char err[EVC_ERR_LEN]);
/* s (n bytes) as a JSON string, quotes included, into out (room for
 * 6 * n + 2 bytes; no NUL written); returns the bytes written. '"' and
 * '\\' are escaped, and every byte below 0x20 (\b \f \n \r \t, else
 * \u00XX); every other byte, UTF-8 included, is copied as is: s must be
 * valid UTF-8 for the result to be JSON. */
size_t msg_json_string(char *out, const char *s, size_t n);
/* "REQUEST_CHARGE" ...; NULL for an invalid value. */
const char *msg_type_name(enum msg_type t);
/* Which topic a type travels on (t must be valid: msg_type_name(t) != NULL). */
enum msg_topic msg_type_topic(enum msg_type t);
/* Base name of a topic ("driver_requests" ...). */
const char *msg_topic_name(enum msg_topic t);
/* True if s is a valid cp_id (^[A-Za-z0-9_-]{1,32}$). */
int msg_valid_cp_id(const char *s);
/* True if s is a valid user/driver id: 1..64 bytes of [A-Za-z0-9_.@-]. */
int msg_valid_user_id(const char *s);
/* True if s is a valid session_id / request_id: 1..64 bytes of printable
 * ASCII without space or '#' (they travel inside link frames too). */
int msg_valid_session_id(const char *s);
/* True if s may be sent as message/reason: valid UTF-8 (strict, as
 * jansson), no byte below 0x20, at most MSG_TEXT_MAX bytes. */
int msg_valid_text(const char *s);
/* True if s may be sent as a CP location: as msg_valid_text, at most 64
 * characters and MSG_LOCATION_MAX bytes; "" is accepted here (Central's
 * REGISTER rule asks for at least one character). */
int msg_valid_location(const char *s);
/* The rule for a CP's location wherever one is set (REGISTER, the
 * registry, --add-cp, --location): 1..64 characters of strict UTF-8, no
 * control character, no '#' (it would split a link frame). NULL if s is
 * such a location, else why not ("location is empty", ...). */
const char *msg_check_location(const char *s);

#endif
