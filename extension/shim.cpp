/*-------------------------------------------------------------------------
 *
 * extension/shim.cpp
 *		The pg_durable shim: a background worker that supervises the external
 *		pg_durable_daemon process for this cluster.
 *
 * Wording: the *shim* is this background worker; the *daemon* is the external
 * orchestrator it launches; the *lifeline* is a pipe whose write end only the
 * shim holds, so the daemon reads EOF on its end the moment the shim is gone
 * (the same trick as PostgreSQL's postmaster-death pipe).
 *
 * The shim starts once recovery has finished, launches the daemon with the
 * socket directory, port, database and role of this cluster, restarts it with
 * exponential backoff when it exits, forwards SIGHUP, and on shutdown stops it
 * with SIGTERM (a second SIGTERM, then SIGKILL, when it does not finish in
 * time). Children are reaped with waitpid(WNOHANG) whenever the latch wakes
 * us: SIGCHLD sets the latch, and a latch timeout catches anything missed.
 *
 * Pure PG zone (STYLE B3, A4 item 14): C style, no STL, no exceptions.
 * Between fork() and exec() the child calls async-signal-safe functions only
 * and never returns into PostgreSQL code.
 *
 * IDENTIFICATION
 *		extension/shim.cpp
 *
 *-------------------------------------------------------------------------
 */
extern "C" {
#include "postgres.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"
}

#include "extension/guc.hpp"
#include "extension/shim.hpp"

/* The daemon finds its end of the lifeline at this descriptor (--parent-fd). */
#define SHIM_LIFELINE_FD 3
/* Restart backoff: doubles per quick exit, back to the minimum after a healthy run. */
#define SHIM_RESTART_MIN_MS 1000
#define SHIM_RESTART_MAX_MS 60000
#define SHIM_HEALTHY_RUN_MS 30000
/* Shutdown: SIGTERM (drain), a second SIGTERM (fast exit), then SIGKILL. */
#define SHIM_FAST_EXIT_AFTER_MS 5000
#define SHIM_KILL_AFTER_MS 10000
/* Upper bound of one latch wait, so a missed SIGCHLD costs at most this long. */
#define SHIM_POLL_MS 1000

extern "C" {
PGDLLEXPORT void pgd_shim_main(Datum main_arg);
}

/* The running daemon, if any. */
typedef struct ShimChild
{
	pid_t		pid;			/* 0 when no daemon runs */
	int			lifeline_fd;	/* write end of the lifeline, -1 when none */
	TimestampTz started_at;
} ShimChild;

static ShimChild shim_child = {0, -1, 0};
static int	shim_restart_delay_ms = SHIM_RESTART_MIN_MS;
static TimestampTz shim_next_start = 0;
/* Name of the bootstrap superuser, used when pg_durable.worker_role is empty. */
static char *shim_bootstrap_role = NULL;
/* Holds one launch's argument strings; reset before the next launch. */
static MemoryContext shim_spawn_context = NULL;

/* forward declarations */
static void shim_handle_sigchld(SIGNAL_ARGS);
static char *shim_lookup_bootstrap_superuser(void);
static const char *shim_daemon_path(void);
static char *shim_socket_host(void);
static void shim_spawn_daemon(void);
static void shim_exec_child(int lifeline, pid_t shim, char **argv) pg_attribute_noreturn();
static void shim_schedule_restart(void);
static bool shim_reap_daemon(bool log_exit);
static void shim_stop_daemon(void);
static long shim_ms_until(TimestampTz when);

/*
 * pgd_shim_register registers the shim. Called from _PG_init while
 * shared_preload_libraries is processed and pg_durable.launch_daemon is on.
 */
void
pgd_shim_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	/*
	 * A connection to no database gives us shared catalogs only: enough to
	 * look up the bootstrap superuser's name, and it makes the shim visible
	 * in pg_stat_activity (backend_type "pg_durable shim").
	 */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* Should the shim itself crash, the postmaster brings it back. */
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "pg_durable", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "pgd_shim_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "pg_durable shim", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_durable shim", BGW_MAXLEN);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/*
 * pgd_shim_main is the shim's entry point: supervise the daemon until the
 * server shuts down.
 */
void
pgd_shim_main(Datum main_arg)
{
	(void) main_arg;

	/* Handlers first, then unblock (STYLE B3.2). */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* Not die(): on shutdown we must stop the daemon before exiting. */
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGCHLD, shim_handle_sigchld);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	shim_bootstrap_role = shim_lookup_bootstrap_superuser();
	shim_spawn_context = AllocSetContextCreate(TopMemoryContext, "pg_durable shim spawn",
											   ALLOCSET_SMALL_SIZES);

	for (;;)
	{
		long		timeout_ms = SHIM_POLL_MS;

		if (ShutdownRequestPending)
			break;

		shim_reap_daemon(true);
		if (shim_child.pid == 0)
		{
			long		wait_ms = shim_ms_until(shim_next_start);

			if (wait_ms <= 0)
				shim_spawn_daemon();
			else if (wait_ms < timeout_ms)
				timeout_ms = wait_ms;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* The daemon re-reads its settings from the server on SIGHUP. */
			if (shim_child.pid != 0)
				kill(shim_child.pid, SIGHUP);
		}
	}

	shim_stop_daemon();
	proc_exit(0);
}

/*
 * shim_handle_sigchld wakes the main loop so an exited daemon is reaped and
 * restarted without waiting for the latch timeout.
 */
static void
shim_handle_sigchld(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * shim_lookup_bootstrap_superuser returns the name of the role with OID 10,
 * copied into TopMemoryContext so it outlives the transaction.
 */
static char *
shim_lookup_bootstrap_superuser(void)
{
	char	   *name;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	name = MemoryContextStrdup(TopMemoryContext,
							   GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false));
	CommitTransactionCommand();
	return name;
}

/*
 * shim_daemon_path returns pg_durable.daemon_path, or pg_durable_daemon in the
 * directory of the running postgres binary when the setting is empty.
 */
static const char *
shim_daemon_path(void)
{
	static char path[MAXPGPATH];

	if (pgd_daemon_path != NULL && pgd_daemon_path[0] != '\0')
		return pgd_daemon_path;

	/* my_exec_path is the postgres binary, found by find_my_exec at startup. */
	strlcpy(path, my_exec_path, sizeof(path));
	get_parent_directory(path);
	join_path_components(path, path, "pg_durable_daemon");
	return path;
}

/*
 * shim_socket_host returns the first entry of unix_socket_directories, the
 * socket the daemon connects through; "localhost" when there is none.
 */
static char *
shim_socket_host(void)
{
	char	   *raw;
	List	   *dirs = NIL;

	if (Unix_socket_directories == NULL || Unix_socket_directories[0] == '\0')
		return pstrdup("localhost");

	raw = pstrdup(Unix_socket_directories);
	if (!SplitDirectoriesString(raw, ',', &dirs) || dirs == NIL)
		return pstrdup("localhost");
	return pstrdup((char *) linitial(dirs));
}

/*
 * shim_spawn_daemon starts the daemon with fork() and exec(). On failure it
 * logs and schedules another attempt.
 */
static void
shim_spawn_daemon(void)
{
	MemoryContext old_context;
	const char *path;
	char	   *host;
	const char *role;
	const char *dbname;
	char		port[16];
	char	   *argv[16];
	int			argc = 0;
	int			lifeline[2];
	pid_t		pid;

	/*
	 * Restarts may go on for the life of the server; keep each launch's
	 * strings in a context of their own so they do not pile up.
	 */
	MemoryContextReset(shim_spawn_context);
	old_context = MemoryContextSwitchTo(shim_spawn_context);
	path = shim_daemon_path();
	host = shim_socket_host();
	role = (pgd_worker_role != NULL && pgd_worker_role[0] != '\0')
		? pgd_worker_role : shim_bootstrap_role;
	dbname = (pgd_database != NULL && pgd_database[0] != '\0') ? pgd_database : "postgres";
	snprintf(port, sizeof(port), "%d", PostPortNumber);

	if (access(path, X_OK) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("pg_durable shim: cannot execute daemon binary \"%s\": %m", path),
				 errhint("Install pg_durable_daemon or set pg_durable.daemon_path.")));
		shim_schedule_restart();
		MemoryContextSwitchTo(old_context);
		return;
	}

	/* Built before fork(): the child may only call async-signal-safe code. */
	argv[argc++] = pstrdup(path);
	argv[argc++] = pstrdup("--host");
	argv[argc++] = host;
	argv[argc++] = pstrdup("--port");
	argv[argc++] = pstrdup(port);
	argv[argc++] = pstrdup("--dbname");
	argv[argc++] = pstrdup(dbname);
	argv[argc++] = pstrdup("--user");
	argv[argc++] = pstrdup(role);
	argv[argc++] = pstrdup("--parent-fd");
	argv[argc++] = psprintf("%d", SHIM_LIFELINE_FD);
	argv[argc] = NULL;

	/* Both ends close-on-exec; the child re-enables only its read end. */
	if (pipe2(lifeline, O_CLOEXEC) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("pg_durable shim: could not create lifeline pipe: %m")));
		shim_schedule_restart();
		MemoryContextSwitchTo(old_context);
		return;
	}

	/* Flush stdio so buffered output is not written twice. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
	{
		int			save_errno = errno;

		close(lifeline[0]);
		close(lifeline[1]);
		errno = save_errno;
		ereport(WARNING,
				(errmsg("pg_durable shim: could not fork daemon process: %m")));
		shim_schedule_restart();
		MemoryContextSwitchTo(old_context);
		return;
	}
	if (pid == 0)
		shim_exec_child(lifeline[0], MyProcPid, argv);

	close(lifeline[0]);
	shim_child.pid = pid;
	shim_child.lifeline_fd = lifeline[1];
	shim_child.started_at = GetCurrentTimestamp();
	ereport(LOG,
			(errmsg("pg_durable shim: started daemon \"%s\" (pid %d) for database \"%s\" as role \"%s\"",
					path, (int) pid, dbname, role)));
	MemoryContextSwitchTo(old_context);
}

/*
 * shim_exec_child runs in the forked child: reset signals, wire up the
 * lifeline, close every other inherited descriptor (the postmaster's listen
 * sockets among them: a daemon holding those would keep the port busy after
 * the server stops) and exec the daemon. Async-signal-safe calls only.
 */
static void
shim_exec_child(int lifeline, pid_t shim, char **argv)
{
	sigset_t	none;
	struct sigaction dfl;
	int			sig;
	static const char exec_failed[] = "pg_durable shim: could not execute the daemon binary\n";

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void) sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);

	/*
	 * A session of its own: the postmaster signals each child's whole process
	 * group, and the daemon must get exactly one SIGTERM (from us) on
	 * shutdown, not the postmaster's SIGTERM plus ours (a second SIGTERM means
	 * "exit at once") nor the SIGQUIT of an immediate shutdown.
	 */
	(void) setsid();

	/*
	 * Backstop for the lifeline: a signal when the shim dies (the shim has a
	 * single thread, so "the parent thread" is the shim). A shim that died
	 * before this call sends nothing: we were reparented already, so check,
	 * and never start a daemon nobody supervises.
	 */
	(void) prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != shim)
		_exit(1);

	if (lifeline == SHIM_LIFELINE_FD)
		(void) fcntl(lifeline, F_SETFD, 0);
	else if (dup2(lifeline, SHIM_LIFELINE_FD) < 0)
		_exit(127);
	closefrom(SHIM_LIFELINE_FD + 1);

	execv(argv[0], argv);
	if (write(STDERR_FILENO, exec_failed, sizeof(exec_failed) - 1) < 0)
	{
		/* nothing more we can do */
	}
	_exit(127);
}

/*
 * shim_schedule_restart sets the next start time and doubles the delay for
 * the time after, up to the cap.
 */
static void
shim_schedule_restart(void)
{
	shim_next_start = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), shim_restart_delay_ms);
	shim_restart_delay_ms = Min(shim_restart_delay_ms * 2, SHIM_RESTART_MAX_MS);
}

/*
 * shim_reap_daemon collects an exited daemon without blocking. Returns true
 * when the daemon is gone (or none ran).
 */
static bool
shim_reap_daemon(bool log_exit)
{
	int			status = 0;
	pid_t		reaped;
	long		ran_ms;

	if (shim_child.pid == 0)
		return true;

	reaped = waitpid(shim_child.pid, &status, WNOHANG);
	if (reaped == 0 || (reaped < 0 && errno == EINTR))
		return false;

	/* reaped == pid, or ECHILD: either way the daemon is gone. */
	ran_ms = TimestampDifferenceMilliseconds(shim_child.started_at, GetCurrentTimestamp());
	if (ran_ms >= SHIM_HEALTHY_RUN_MS)
		shim_restart_delay_ms = SHIM_RESTART_MIN_MS;

	if (log_exit)
	{
		if (reaped > 0 && WIFEXITED(status))
			ereport(LOG,
					(errmsg("pg_durable shim: daemon (pid %d) exited with exit code %d; restarting in %d ms",
							(int) shim_child.pid, WEXITSTATUS(status), shim_restart_delay_ms)));
		else if (reaped > 0 && WIFSIGNALED(status))
			ereport(LOG,
					(errmsg("pg_durable shim: daemon (pid %d) was terminated by signal %d: %s; restarting in %d ms",
							(int) shim_child.pid, WTERMSIG(status), pg_strsignal(WTERMSIG(status)),
							shim_restart_delay_ms)));
		else
			ereport(LOG,
					(errmsg("pg_durable shim: daemon (pid %d) is gone; restarting in %d ms",
							(int) shim_child.pid, shim_restart_delay_ms)));
	}

	if (shim_child.lifeline_fd >= 0)
		close(shim_child.lifeline_fd);
	shim_child.pid = 0;
	shim_child.lifeline_fd = -1;
	shim_schedule_restart();
	return true;
}

/*
 * shim_stop_daemon stops the daemon on server shutdown: SIGTERM lets it drain,
 * a second SIGTERM asks for a fast exit, SIGKILL ends it when even that hangs.
 */
static void
shim_stop_daemon(void)
{
	TimestampTz asked_at;
	bool		sent_fast = false;
	bool		sent_kill = false;

	if (shim_child.pid == 0)
		return;

	ereport(LOG, (errmsg("pg_durable shim: stopping daemon (pid %d)", (int) shim_child.pid)));
	kill(shim_child.pid, SIGTERM);
	asked_at = GetCurrentTimestamp();

	while (!shim_reap_daemon(false))
	{
		long		waited_ms = TimestampDifferenceMilliseconds(asked_at, GetCurrentTimestamp());

		if (!sent_fast && waited_ms >= SHIM_FAST_EXIT_AFTER_MS)
		{
			kill(shim_child.pid, SIGTERM);
			sent_fast = true;
		}
		if (!sent_kill && waited_ms >= SHIM_KILL_AFTER_MS)
		{
			ereport(LOG,
					(errmsg("pg_durable shim: daemon (pid %d) did not stop within %d ms, sending SIGKILL",
							(int) shim_child.pid, SHIM_KILL_AFTER_MS)));
			kill(shim_child.pid, SIGKILL);
			sent_kill = true;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * shim_ms_until returns the milliseconds until `when`, or 0 when it has passed.
 */
static long
shim_ms_until(TimestampTz when)
{
	TimestampTz now = GetCurrentTimestamp();

	if (when <= now)
		return 0;
	return TimestampDifferenceMilliseconds(now, when);
}
