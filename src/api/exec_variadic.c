/*
 * exec_variadic.c - execl, execlp and execle, which Rust cannot define
 * (stable Rust has no C-variadic functions). glibc builds them on its
 * internal execve, where no library can interpose, so a shared socket
 * (USOCK_SHM=1) would not cross them; these gather the arguments as glibc
 * does and call the library's execve and execvp (src/api/fork.rs), which
 * hand the sockets on.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

extern char **environ;

/* The library's exec calls (Rust, src/api/fork.rs): not usock_ names,
 * which are the header's public API. */
int userspacesock_execve_argv(const char *path, char *const argv[], char *const envp[]);
int userspacesock_execvp_argv(const char *file, char *const argv[]);

/* Counts the arguments from `first` to the NULL that ends them, as
 * glibc's execl does: -1 and E2BIG past INT_MAX. */
static ptrdiff_t count_args(const char *first, va_list *ap)
{
    ptrdiff_t n = 0;
    for (const char *a = first; a != NULL; a = va_arg(*ap, const char *)) {
        if (++n == INT_MAX) {
            errno = E2BIG;
            return -1;
        }
    }
    return n;
}

/* argv[0..=n]: `first`, the n - 1 arguments after it in *ap, and the
 * NULL that ends them (read too: execle's environment comes next). With
 * `first` NULL (n 0) that NULL was the named argument. */
static void gather(const char **argv, const char *first, ptrdiff_t n, va_list *ap)
{
    argv[0] = first;
    for (ptrdiff_t i = 1; i <= n; i++)
        argv[i] = va_arg(*ap, const char *);
}

/* Gathers the arguments from `first` on in *ap (and, for execle, the
 * environment after them), then execs `target` with them: through PATH
 * (execvp) when `search`. */
static int exec_gathered(const char *target, const char *first, va_list *ap, int with_envp,
                         int search)
{
    va_list count;
    va_copy(count, *ap);
    ptrdiff_t n = count_args(first, &count);
    va_end(count);
    if (n < 0)
        return -1;
    const char *argv[n + 1];
    gather(argv, first, n, ap);
    char *const *envp = with_envp ? va_arg(*ap, char *const *) : environ;
    if (search)
        return userspacesock_execvp_argv(target, (char *const *)argv);
    return userspacesock_execve_argv(target, (char *const *)argv, envp);
}

int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int r = exec_gathered(path, arg, &ap, 0, 0);
    va_end(ap);
    return r;
}

int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int r = exec_gathered(file, arg, &ap, 0, 1);
    va_end(ap);
    return r;
}

/* execle's environment comes after the NULL that ends the arguments. */
int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    int r = exec_gathered(path, arg, &ap, 1, 0);
    va_end(ap);
    return r;
}
