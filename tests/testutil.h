/*
 * testutil.h -- helpers the Check suites share.
 */
#ifndef STRATA_TESTUTIL_H
#define STRATA_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Whether `prog` is an executable file in a directory of $PATH. */
int st_test_on_path(const char *prog);

/* A binary row (caller frees) from the JSON text of an object, as the CDC
 * decoder builds it. Returns what st_row_from_jval() returns, or ST_EPARSE
 * for text that is no JSON. */
int st_test_row(const char *json, uint8_t **row, size_t *len);

#endif
