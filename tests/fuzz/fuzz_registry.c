/* libFuzzer: the registry client's parsers of what a registry sends
 * (src/image/registry.c): a manifest or index (JSON, with and without a
 * content type), a WWW-Authenticate challenge and an image reference. The
 * first byte picks the parser. */
#include <stdlib.h>
#include <string.h>

#include "veil/registry.h"
#include "fuzzer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct veil_diags d;
	veil_diags_init(&d);
	char *s = malloc(size);
	if (!s)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
	case 1: {
		struct veil_manifest_info m;
		const char *ct =
		    data[0] % 4 ? "application/vnd.docker.distribution.manifest.v2+json" : NULL;
		if (veil_manifest_parse(s, size - 1, ct, &m, &d) == 0) {
			for (size_t i = 0; i < m.count; i++)
				if (strlen(m.items[i].digest) != 71)
					abort();
			veil_manifest_info_free(&m);
		}
		break;
	}
	case 2: {
		struct veil_auth_challenge c;
		if (veil_auth_challenge_parse(s, &c) == 0 && strcmp(c.scheme, "Basic") &&
		    (strcmp(c.scheme, "Bearer") || !c.realm[0]))
			abort();
		break;
	}
	case 3: {
		struct veil_image_ref r;
		if (veil_image_ref_parse(s, &r, &d) == 0 &&
		    (!r.repo[0] || !r.host[0] || (!r.tag[0] == !r.digest[0])))
			abort();
		break;
	}
	}
	free(s);
	veil_diags_free(&d);
	return 0;
}
