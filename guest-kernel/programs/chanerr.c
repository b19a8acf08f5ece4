/* test=chanerr [name=link]: channel errnos in one VM. `link` is a stream channel whose peer
 * never comes: SEND/RECV give -EAGAIN and CHANNEL_INFO no flags; plus offsets on streams,
 * bad handles, bad and VMM-owned info pointers, and console flush/info. */
#include "chan.h"
#include "programs.h"

static int check(const char *what, long got, long want)
{
    kprintf("chanerr %s: %ld%s\n", what, got, got == want ? "" : " (WRONG)");
    return got == want ? 0 : 1;
}

static int chanerr_main(void)
{
    long h = channel_arg("name", "link", PVM_CHANNEL_STREAM, "chanerr");
    if (h < 0)
        return 2;
    char buf[16] = "abc";
    struct pvm_channel_stat st = {0xff, 0xff, 0xff};
    int bad = 0;
    bad += check("send-no-peer", pvm_send(h, buf, 3, 0), -PVM_EAGAIN);
    bad += check("recv-no-peer", pvm_recv(h, buf, sizeof buf, 0), -PVM_EAGAIN);
    bad += check("info-no-peer", pvm_channel_info(h, &st), 0);
    bad += check("info-no-peer-kind", st.kind, PVM_CHANNEL_STREAM);
    bad += check("info-no-peer-flags", st.flags, 0);
    bad += check("info-no-peer-size", (long)st.size, 0);
    bad += check("send-offset", pvm_send(h, buf, 3, 8), -PVM_EINVAL);
    bad += check("recv-offset", pvm_recv(h, buf, 3, 8), -PVM_EINVAL);
    bad += check("flush-stream", pvm_channel_flush(h), 0);
    bad += check("flush-bad-handle", pvm_channel_flush(99), -PVM_EBADF);
    bad += check("info-bad-handle", pvm_channel_info(99, &st), -PVM_EBADF);
    bad += check("info-bad-pointer", pvm_channel_info(h, (void *)(boot_info->mem_size - 8)), -PVM_EFAULT);
    bad += check("info-boot-info", pvm_channel_info(h, (void *)PVM_LAYOUT_BOOT_INFO), -PVM_EFAULT);
    bad += check("info-console", pvm_channel_info(PVM_CONSOLE_HANDLE, &st), 0);
    bad += check("info-console-kind", st.kind, PVM_CHANNEL_CONSOLE);
    bad += check("info-console-writable", !!(st.flags & PVM_CHAN_WRITABLE), 1);
    bad += check("flush-console", pvm_channel_flush(PVM_CONSOLE_HANDLE), 0);
    bad += check("console-send-offset", pvm_send(PVM_CONSOLE_HANDLE, buf, 1, 1), -PVM_EINVAL);
    bad += check("features", (boot_info->features & PVM_FEAT_INTER_VM) != 0, 1);
    kprintf("chanerr: %s\n", bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
PROGRAM(chanerr);
