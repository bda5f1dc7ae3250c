/* The store a veil-cas runs on, by its --store URL (store.h). */
#include "veil/store.h"

int veil_store_open(const char *url, const char *data_dir, bool first,
		    const struct veil_store_opener *opener, struct veil_store **out,
		    struct veil_diags *d)
{
	if (!url)
		return veil_store_sqlite_open(data_dir, opener, out, d);
	if (veil_store_url_is_pg(url))
		/* a new database has no policies to index: no opener */
		return veil_store_pg_open(url, data_dir, first, out, d);
	veil_diag(d, "--store: expected postgresql://... or postgres://... (without --store: "
		     "SQLite in the data folder)");
	return VEIL_EINVAL;
}
