/*
 * understudy_cda.h — application-assisted checkpointing for C guests:
 * critical data areas (CDAs) and checkpoint cycles (seeds 001 and 000).
 *
 * The application declares the memory that matters — its critical data
 * areas — and brackets each transaction (or group of operations) with a
 * cycle. At the end of a cycle the host commits the changes made to the
 * areas since the previous commit, atomically (all or nothing), to the
 * configured target: an in-memory copy, a file on disk, or a backup that
 * acknowledges. After a crash, a restarted guest re-registers the same areas
 * and asks for them back: it gets each area as of the last committed cycle
 * and rebuilds the rest of its state from them.
 *
 *   #include "understudy_cda.h"
 *
 *   static char arena[1 << 20] __attribute__((aligned(4096)));
 *   int id = us_cda_register(arena, sizeof arena);   // >= 1, or US_CDA_E*
 *   int64_t cycle = us_cda_recover();                 // 0: nothing committed yet
 *   for (;;) {
 *       us_cda_begin();
 *       ... change the areas ...
 *       if (failed) { us_cda_abort(); continue; }     // areas back as of begin
 *       us_cda_end();                                 // committed: the cycle number
 *   }
 *
 * Hypercalls (import module "understudy"):
 *
 *   cda_register(ptr, len) -> i32     declares [ptr, ptr+len) a critical data
 *       area; returns its id (>= 1, ids count up from 1 in registration
 *       order). Areas must not overlap and must lie inside memory. Not
 *       inside a cycle. Any alignment works; page-aligned areas track best.
 *   cda_unregister(id) -> i32         the area stops being committed (0).
 *       Not inside a cycle.
 *   cda_begin() -> i32                opens a cycle (0). Changes made to the
 *       areas between cycles belong to the next commit.
 *   cda_end() -> i64                  commits every change to the areas since
 *       the previous commit and returns the cycle's number (1, 2, ...) once
 *       the target holds it: acknowledged by the backup, on disk, or copied.
 *       A command guest is suspended while it waits. A reactor call cannot
 *       wait: it gets the number the cycle will have, and the host holds the
 *       call's response (and output) until the commit is durable; if the
 *       commit fails, the response is withheld and the areas are put back as
 *       they were at cda_begin. One commit is in flight at a time: a reactor
 *       ends at most one cycle per call (cda_begin after cda_end in the same
 *       call answers US_CDA_ESTATE).
 *   cda_abort() -> i32                ends the cycle without committing: the
 *       areas are put back as they were at cda_begin (0).
 *   cda_recover() -> i64              fills every registered area with its
 *       content at the last committed cycle and returns that cycle's number;
 *       0 when nothing was committed (areas untouched). The areas registered
 *       must be the ones committed (same ids, addresses and lengths), or
 *       US_CDA_ELAYOUT. Not inside a cycle.
 *
 * How the host finds what changed is its choice (understudy run --cda-mode):
 * page tracking, word-level differences, or — with the module rewritten so
 * every store reports itself (mode emul) — the stores as they happen. The
 * guest's code is the same in every mode.
 *
 * Negative answers (every call):
 */
#ifndef UNDERSTUDY_CDA_H
#define UNDERSTUDY_CDA_H

#include <stdint.h>

/* The range is not inside memory, or is empty. */
#define US_CDA_ERANGE  (-1)
/* Too many areas, or too many bytes in areas (the host's bounds). */
#define US_CDA_ELIMIT  (-2)
/* Wrong state: begin inside a cycle, end/abort outside one, register or
 * recover inside one, an unknown id, overlapping areas. */
#define US_CDA_ESTATE  (-3)
/* The target failed (disk error, backup unreachable past its timeout): the
 * cycle is not committed and the areas are as they were at cda_begin. */
#define US_CDA_EIO     (-4)
/* cda_recover: the registered areas are not the ones committed. */
#define US_CDA_ELAYOUT (-5)

#define US_CDA_IMPORT(name) __attribute__((import_module("understudy"), import_name(#name)))

US_CDA_IMPORT(cda_register)   int32_t us_cda_register_raw(uint32_t ptr, uint32_t len);
US_CDA_IMPORT(cda_unregister) int32_t us_cda_unregister(int32_t id);
US_CDA_IMPORT(cda_begin)      int32_t us_cda_begin(void);
US_CDA_IMPORT(cda_end)        int64_t us_cda_end(void);
US_CDA_IMPORT(cda_abort)      int32_t us_cda_abort(void);
US_CDA_IMPORT(cda_recover)    int64_t us_cda_recover(void);

static inline int32_t us_cda_register(const void *ptr, uint32_t len) {
    return us_cda_register_raw((uint32_t)(uintptr_t)ptr, len);
}

#endif
