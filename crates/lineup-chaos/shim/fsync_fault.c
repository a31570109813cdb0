/* Preloaded into a node by lineup-chaos (LD_PRELOAD): while the file named by
 * LINEUP_CHAOS_FSYNC_FAIL_FILE exists, fsync, fdatasync and syncfs fail with EIO, as they do
 * when a disk's write-back fails. The data written stays in the page cache; the node is told
 * only that it may not be on disk, which is all a failed fsync promises. Otherwise every call
 * goes to the C library's own function. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int failing(void) {
    const char *flag = getenv("LINEUP_CHAOS_FSYNC_FAIL_FILE");
    struct stat seen;
    return flag != NULL && stat(flag, &seen) == 0;
}

#define FORWARD(name)                                                  \
    int name(int fd) {                                                 \
        static int (*real)(int) = NULL;                                \
        if (failing()) {                                               \
            errno = EIO;                                               \
            return -1;                                                 \
        }                                                              \
        if (real == NULL) {                                            \
            real = (int (*)(int))dlsym(RTLD_NEXT, #name);              \
            if (real == NULL) {                                        \
                errno = ENOSYS;                                        \
                return -1;                                             \
            }                                                          \
        }                                                              \
        return real(fd);                                               \
    }

FORWARD(fsync)
FORWARD(fdatasync)
FORWARD(syncfs)
