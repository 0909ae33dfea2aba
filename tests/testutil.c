/*
 * testutil.c -- helpers the Check suites share.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "row.h"

int st_test_on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char *copy, *dirp, *sp, file[4096];
	int found = 0;

	if (!path || !(copy = strdup(path)))
		return 0;
	for (dirp = strtok_r(copy, ":", &sp); dirp && !found;
	     dirp = strtok_r(NULL, ":", &sp)) {
		snprintf(file, sizeof(file), "%s/%s", dirp, prog);
		found = access(file, X_OK) == 0;
	}
	free(copy);
	return found;
}

int st_test_row(const char *json, uint8_t **row, size_t *len)
{
	st_json_t doc = {0};
	int err;

	err = st_json_parse(&doc, json, strlen(json), NULL, 0);
	if (!err)
		err = st_row_from_jval(&doc, st_json_root(&doc), row, len);
	st_json_free(&doc);
	return err;
}
