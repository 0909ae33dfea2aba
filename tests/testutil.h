/*
 * testutil.h -- helpers the Check suites share.
 */
#ifndef STRATA_TESTUTIL_H
#define STRATA_TESTUTIL_H

/* Whether `prog` is an executable file in a directory of $PATH. */
int st_test_on_path(const char *prog);

#endif
