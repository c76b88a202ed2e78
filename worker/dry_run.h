/*
 * dry_run.h - junction-worker --dry-run: one script against a real connection, for
 * authors.
 *
 *   junction-worker --dry-run FILE --integration KEY --connection ID
 *                   [--environment NAME] [--input JSON]
 *
 * Checks the script's declaration, opens the connection (from the environment given by
 * the usual JUNCTION_* variables, "dev" unless --environment says otherwise), runs the
 * action with the input (or the sync's exec once, as a first run), and prints every HTTP
 * call, every log line, what the metadata would become, the records a sync would save or
 * delete (counts per model and the first few), and the action's output or error. Nothing
 * is written: not the metadata, the records, the checkpoints, nor a job. The provider is
 * really called, through the same provider session as a worker's run.
 */
#ifndef JN_WORKER_DRY_RUN_H
#define JN_WORKER_DRY_RUN_H

/* Runs the command line; returns the process's exit status (0 on success, 1 when the
 * script failed, 2 on a usage or set-up error). */
int jn_dry_run_main(int argc, char **argv);

#endif
