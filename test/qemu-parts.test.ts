// The qemu backend's and the image build's pure parts, without a VM: reading
// the guest's console, ordering kernel modules, the initramfs archive format.
import { describe, expect, test } from "bun:test";
import { bootFailureInConsole } from "../lib/vm/qemu.ts";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $ } from "../lib/core/shell.ts";
import { oomKills as oomKillsInConsole, parseStorage, storageScript } from "../lib/vm/guest.ts";
import { imageKey, moduleLoadOrder, newcArchive } from "../lib/vm/image/index.ts";

describe("the guest's serial console", () => {
  test("OOM kills: pid and name of each, whatever the prefix", () => {
    const text = [
      "[   12.345678] picoshare invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
      "[   12.400000] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/picoshare.service,task=picoshare,pid=141,uid=999",
      "[   12.400100] Out of memory: Killed process 141 (picoshare) total-vm:1234kB, anon-rss:20000kB, file-rss:0kB, shmem-rss:0kB, UID:999 pgtables:96kB oom_score_adj:0\r",
      "[   13.000000] Out of memory: Killed process 90 (systemd-journal) total-vm:1kB",
      "unrelated line",
    ].join("\n");
    const kills = oomKillsInConsole(text);
    expect(kills.map((k) => [k.pid, k.name])).toEqual([[141, "picoshare"], [90, "systemd-journal"]]);
    expect(kills[0].line).toStartWith("Out of memory: Killed process 141 (picoshare)");
    expect(oomKillsInConsole("")).toEqual([]);
  });

  test("a guest that will not come up: kernel panic or the initramfs giving up", () => {
    expect(bootFailureInConsole("[ 1.2] Kernel panic - not syncing: System is deadlocked on memory\n")).toBe("Kernel panic - not syncing: System is deadlocked on memory");
    expect(bootFailureInConsole("initramfs: no /dev/vda after 10 s\n")).toBe("initramfs: no /dev/vda after 10 s");
    expect(bootFailureInConsole("[ 1.0] Run /init as init process\n")).toBeNull();
  });
});

describe("the guest's storage script", () => {
  test("run by a real shell: the data folder's bytes and the multipart temp files, facts named as the result's fields", async () => {
    const dir = mkdtempSync(join(tmpdir(), "guest-storage-"));
    try {
      mkdirSync(join(dir, "data"));
      mkdirSync(join(dir, "tmp"));
      writeFileSync(join(dir, "data", "store.db"), Buffer.alloc(4096));
      writeFileSync(join(dir, "data", "store.db-wal"), Buffer.alloc(1000));
      writeFileSync(join(dir, "tmp", "multipart-123"), Buffer.alloc(300));
      writeFileSync(join(dir, "tmp", "multipart-456"), Buffer.alloc(200));
      writeFileSync(join(dir, "tmp", "other"), Buffer.alloc(50));
      const out = await $({ nothrow: true })`sh -c ${storageScript(join(dir, "data"), join(dir, "tmp"))}`;
      expect(out.exitCode).toBe(0);
      expect(parseStorage(out.stdout)).toEqual({ facts: { data_dir_bytes: 5096, temp_files_left: 2 }, tempBytes: 500 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the fast initramfs", () => {
  test("modules load dependencies first, each once", () => {
    const dep = [
      "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
      "kernel/fs/jbd2/jbd2.ko:",
      "kernel/fs/mbcache.ko:",
      "kernel/lib/crc16.ko:",
      "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio_ring.ko:",
      "kernel/drivers/virtio/virtio.ko:",
      "kernel/crypto/crc32c_generic.ko:",
    ].join("\n");
    const order = moduleLoadOrder(dep, ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]).map((p) => p.split("/").pop());
    expect(order).toEqual(["virtio_ring.ko", "virtio.ko", "virtio_pci.ko", "virtio_blk.ko", "crc32c_generic.ko", "crc16.ko", "mbcache.ko", "jbd2.ko", "ext4.ko"]);
    expect(() => moduleLoadOrder(dep, ["nonexistent"])).toThrow(/nonexistent not found/);
  });

  test("the archive is cpio newc: 4-byte aligned entries, a device node, the trailer", () => {
    const a = newcArchive([
      { name: "dev", mode: 0o040755 },
      { name: "dev/console", mode: 0o020600, rdev: [5, 1] },
      { name: "init", mode: 0o100755, data: Buffer.from("#!/bin/sh\n") },
    ]);
    const entries: { name: string; mode: number; size: number; rdev: [number, number] }[] = [];
    let at = 0;
    while (at < a.length) {
      const h = a.subarray(at, at + 110).toString("latin1");
      expect(h.slice(0, 6)).toBe("070701");
      const field = (i: number) => parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
      const nameSize = field(11);
      const size = field(6);
      const name = a.subarray(at + 110, at + 110 + nameSize - 1).toString();
      entries.push({ name, mode: field(1), size, rdev: [field(9), field(10)] });
      at += 110 + nameSize;
      at += (4 - (at % 4)) % 4;
      if (name === "init") expect(a.subarray(at, at + size).toString()).toBe("#!/bin/sh\n");
      at += size;
      at += (4 - (at % 4)) % 4;
    }
    expect(at).toBe(a.length);
    expect(entries.map((e) => e.name)).toEqual(["dev", "dev/console", "init", "TRAILER!!!"]);
    expect(entries[1]).toMatchObject({ mode: 0o020600, rdev: [5, 1] });
  });

  test("the content key is stable within a version and names the suite", () => {
    expect(imageKey()).toBe(imageKey());
    expect(imageKey()).toMatch(/^bookworm-[0-9a-f]{16}$/);
  });
});
