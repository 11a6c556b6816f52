/*
 * image-awaiter-noop: the static no-op every puller init container runs instead of anything
 * inside the image being pulled, so FROM scratch and distroless images work (no /bin/sh, no
 * sleep, no libc). No arguments: exit 0. `install DEST`: copy this binary to DEST, mode 0755,
 * which is how the helper reaches the pod's emptyDir from the awaiter image.
 *
 * Built with -nostdlib -static: raw Linux syscalls for x86_64 and aarch64, entry at _start.
 */

#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_WRONLY_CREAT_TRUNC (01 | 0100 | 01000)

#if defined(__x86_64__)
#define SYS_READ 0
#define SYS_WRITE 1
#define SYS_CLOSE 3
#define SYS_FCHMOD 91
#define SYS_OPENAT 257
#define SYS_EXIT_GROUP 231

static long syscall4(long n, long a, long b, long c, long d) {
    register long r10 __asm__("r10") = d;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call noop_main\n"
        "  hlt\n");

#elif defined(__aarch64__)
#define SYS_READ 63
#define SYS_WRITE 64
#define SYS_CLOSE 57
#define SYS_FCHMOD 52
#define SYS_OPENAT 56
#define SYS_EXIT_GROUP 94

static long syscall4(long n, long a, long b, long c, long d) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}

__asm__(".text\n.global _start\n_start:\n"
        "  mov x0, sp\n"
        "  bl noop_main\n"
        "  brk #0\n");

#else
#error "image-awaiter-noop supports x86_64 and aarch64"
#endif

static void leave(int code) {
    for (;;) syscall4(SYS_EXIT_GROUP, code, 0, 0, 0);
}

static long length(const char *text) {
    long n = 0;
    while (text[n]) n++;
    return n;
}

static void fail(const char *what, const char *path) {
    syscall4(SYS_WRITE, 2, (long)"image-awaiter-noop: ", 20, 0);
    syscall4(SYS_WRITE, 2, (long)what, length(what), 0);
    syscall4(SYS_WRITE, 2, (long)path, length(path), 0);
    syscall4(SYS_WRITE, 2, (long)"\n", 1, 0);
    leave(1);
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

static void install(const char *dest) {
    static char buffer[4096];
    long in = syscall4(SYS_OPENAT, AT_FDCWD, (long)"/proc/self/exe", O_RDONLY, 0);
    if (in < 0) fail("cannot read itself from ", "/proc/self/exe");
    long out = syscall4(SYS_OPENAT, AT_FDCWD, (long)dest, O_WRONLY_CREAT_TRUNC, 0755);
    if (out < 0) fail("cannot create ", dest);
    for (;;) {
        long got = syscall4(SYS_READ, in, (long)buffer, sizeof buffer, 0);
        if (got < 0) fail("read failed copying to ", dest);
        if (got == 0) break;
        for (long done = 0; done < got;) {
            long put = syscall4(SYS_WRITE, out, (long)(buffer + done), got - done, 0);
            if (put <= 0) fail("write failed on ", dest);
            done += put;
        }
    }
    if (syscall4(SYS_FCHMOD, out, 0755, 0, 0) < 0) fail("cannot chmod ", dest);
    if (syscall4(SYS_CLOSE, out, 0, 0, 0) < 0) fail("cannot close ", dest);
    syscall4(SYS_CLOSE, in, 0, 0, 0);
}

__attribute__((used)) void noop_main(long *stack) {
    long argc = stack[0];
    char **argv = (char **)(stack + 1);
    if (argc == 3 && same(argv[1], "install")) install(argv[2]);
    else if (argc >= 2 && same(argv[1], "install")) fail("usage: image-awaiter-noop install ", "DEST");
    leave(0);
}
