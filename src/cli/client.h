/* The CLI's HTTPS client to a CAS: its identity, pinned CAS keys, requests. */
#ifndef VEIL_CLI_CLIENT_H
#define VEIL_CLI_CLIENT_H

#include "veil/common.h"
#include "veil/tls.h"

struct client {
	char *home;      /* $VEIL_HOME or ~/.config/veil */
	char *url;       /* https://host:port, no trailing slash */
	char *cert_path; /* our identity */
	char *key_path;
	char pinned[VEIL_KEY_HASH_HEX]; /* "" when not pinned */
	char identity[VEIL_KEY_HASH_HEX];
};

struct response {
	long status;
	struct veil_buf body;
	char server_key[VEIL_KEY_HASH_HEX]; /* of the TLS peer, when asked for */
	char *server_cert_pem;
};

/* $VEIL_HOME, else ~/.config/veil; caller frees. */
char *cli_home_dir(void);
/* url NULL: $VEIL_CAS, else the CAS pinned last. Creates the identity on first use. */
int client_open(struct client *c, const char *url, struct veil_diags *d);
void client_close(struct client *c);
/* want_cert: fill server_key/server_cert_pem (used before a key is pinned).
 * 0 when the CAS answered, whatever the HTTP status (in r->status: the
 * caller decides what a status means), or a veil_err with the reason in d
 * when there is no answer. */
int client_request(struct client *c, const char *method, const char *path, const char *body,
		   int want_cert, struct response *r, struct veil_diags *d);
void response_free(struct response *r);
/* The JSON "error" of a failed response, or its status line. */
void response_error(const struct response *r, const char *what, struct veil_diags *d);
int client_pin(struct client *c, const char *key_hash, struct veil_diags *d);
/* "https://host:port" from "host", "host:port" or a URL; default port 8081. */
char *client_normalize_url(const char *in);

#endif
