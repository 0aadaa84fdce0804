// What goes into the test VM image: Debian (debootstrap, Debian packages
// only) with sshd, a user with sudo, DHCP networking and nothing else
// running. The files written into it and the commands run in it are listed
// here; key.ts makes the content key from them.
import { GiB } from "../../core/sizes.ts";

/** Bump when the build steps change in a way the content key would not see. */
export const IMAGE_SCRIPT_VERSION = 1;
export const IMAGE_SUITE = "bookworm";
export const IMAGE_MIRROR = process.env.PERF_VM_MIRROR || "http://deb.debian.org/debian";
/** debootstrap --variant=minbase plus these. */
export const IMAGE_PACKAGES = [
  "linux-image-amd64",
  "systemd-sysv",
  "udev",
  "openssh-server",
  "sudo",
  "iproute2",
  "procps",
  // The system bus and the PAM module that user managers (user@UID.service)
  // need, for the cgroup-v2 tests' user case; logins stay out of logind (below).
  "dbus",
  "libpam-systemd",
  // A static shell for the minimal initramfs of the fast boot path.
  "busybox-static",
];
/**
 * Modules the fast initramfs loads (with their dependencies): a virtio ext4
 * root, the virtio network card, serial ports and entropy source.
 */
export const FAST_INITRD_MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "virtio_net", "virtio_console", "virtio_rng"];

/**
 * Added to the kernel command line on the fast path: the initramfs has set up
 * the modules and the network (DHCP, busybox udhcpc), so udev, networkd and
 * tmpfiles are masked for this boot (systemd-debug-generator reads these).
 * The image itself is unchanged: a boot without them is a normal systemd boot.
 */
export const FAST_CMDLINE_EXTRA = [
  "picoshare_perf.fast=1",
  ...[
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-networkd.service", "systemd-networkd.socket",
    "systemd-tmpfiles-setup.service",
  ].map((u) => `systemd.mask=${u}`),
].join(" ");
/** Virtual size of the root file system: room for a 5G test (temp file + database = 2x). */
export const IMAGE_DISK_BYTES = 24 * GiB;
export const IMAGE_USER = "perf";
export const HOST_KEY_ALIAS = "picoshare-perf-vm";
export const GUEST_HOSTNAME = "picoshare-perf";
/** Kernel command line for direct kernel boot (the disk is the first virtio disk). */
export const KERNEL_CMDLINE =
  "root=/dev/vda rw console=ttyS0 quiet panic=-1 mitigations=off random.trust_cpu=on " +
  "systemd.show_status=false net.ifnames=1";

// Units a test VM does not need: timers that wake up during a test, and
// services that only cost boot time (under TCG every unit costs ~0.1-1 s).
const MASKED_UNITS = [
  "apt-daily.timer",
  "apt-daily-upgrade.timer",
  "dpkg-db-backup.timer",
  "e2scrub_all.timer",
  "e2scrub_reap.service",
  "fstrim.timer",
  "systemd-tmpfiles-clean.timer",
  "getty.target",
  "getty-static.service",
  "systemd-networkd-wait-online.service",
  "systemd-network-generator.service",
  "systemd-pstore.service",
  "systemd-journal-flush.service",
  "systemd-update-utmp.service",
  "systemd-update-utmp-runlevel.service",
  "systemd-random-seed.service",
  "systemd-remount-fs.service",
  "systemd-sysusers.service",
  "systemd-sysctl.service",
  "systemd-modules-load.service",
  "systemd-firstboot.service",
  "systemd-machine-id-commit.service",
  "systemd-user-sessions.service",
  // Not needed to run PicoShare (ssh logins stay in ssh.service); a test that
  // needs user managers unmasks and starts it.
  "systemd-logind.service",
  "systemd-ask-password-console.path",
  "systemd-ask-password-wall.path",
  "kmod-static-nodes.service",
  "systemd-tmpfiles-setup-dev.service",
  "modprobe@configfs.service",
  "modprobe@dm_mod.service",
  "modprobe@drm.service",
  "modprobe@efi_pstore.service",
  "modprobe@fuse.service",
  "modprobe@loop.service",
  "dev-hugepages.mount",
  "dev-mqueue.mount",
  "sys-kernel-debug.mount",
  "sys-kernel-tracing.mount",
  "sys-kernel-config.mount",
  "sys-fs-fuse-connections.mount",
  "proc-sys-fs-binfmt_misc.automount",
  "remote-fs.target",
];

export const BLACKLISTED_MODULES = [
  "kvm", "kvm_amd", "kvm_intel", "ccp", "irqbypass",
  "cfg80211", "rfkill", "floppy", "ata_piix", "ata_generic", "pata_acpi",
  "psmouse", "pcspkr", "serio_raw", "evdev", "joydev", "i2c_piix4", "button",
  "bochs", "drm", "drm_kms_helper", "qxl", "intel_rapl_msr", "intel_rapl_common",
  "aesni_intel", "crc32_pclmul", "crct10dif_pclmul", "ghash_clmulni_intel",
  "sha1_ssse3", "sha256_ssse3", "sha512_ssse3", "crc32c_intel",
];

/** Files written into the image: path, content, mode. Part of the content key. */
export function imageFiles(): { path: string; content: string; mode: number }[] {
  return [
    { path: "/etc/hostname", content: `${GUEST_HOSTNAME}\n`, mode: 0o644 },
    { path: "/etc/hosts", content: `127.0.0.1 localhost\n127.0.1.1 ${GUEST_HOSTNAME}\n::1 localhost ip6-localhost ip6-loopback\n`, mode: 0o644 },
    // No fsck at boot (passno 0): the disk is a fresh overlay every time.
    { path: "/etc/fstab", content: "/dev/vda / ext4 rw,noatime,errors=remount-ro 0 0\n", mode: 0o644 },
    {
      path: "/etc/systemd/network/80-dhcp.network",
      content: [
        "# Any wired interface: IPv4 by DHCP (qemu's user network, libvirt's NAT network).",
        "[Match]",
        "Name=en* eth*",
        "",
        "[Network]",
        "DHCP=ipv4",
        "LinkLocalAddressing=no",
        "IPv6AcceptRA=no",
        "",
      ].join("\n"),
      mode: 0o644,
    },
    {
      path: "/etc/ssh/sshd_config.d/picoshare-perf.conf",
      content: [
        "# Key logins only, for the one user made for this image.",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        `AllowUsers ${IMAGE_USER}`,
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "UseDNS no",
        "MaxSessions 32",
        "MaxStartups 32:30:64",
        "",
      ].join("\n"),
      mode: 0o644,
    },
    { path: `/etc/sudoers.d/${IMAGE_USER}`, content: `${IMAGE_USER} ALL=(ALL) NOPASSWD: ALL\n`, mode: 0o440 },
    {
      path: "/etc/systemd/journald.conf.d/picoshare-perf.conf",
      content: "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\nForwardToConsole=no\n",
      mode: 0o644,
    },
    // A small initrd: only what mounting a virtio ext4 root needs (quicker to unpack under TCG).
    { path: "/etc/initramfs-tools/conf.d/picoshare-perf.conf", content: "MODULES=list\n", mode: 0o644 },
    { path: "/etc/initramfs-tools/modules", content: "virtio_pci\nvirtio_blk\next4\n", mode: 0o644 },
    // sshd as soon as the system is up: Debian's unit waits for network.target
    // (systemd-networkd's start-up) and runs `sshd -t` first; sshd listens on
    // 0.0.0.0 before the address arrives by DHCP.
    {
      path: "/etc/systemd/system/ssh.service",
      content: [
        "[Unit]",
        "Description=OpenBSD Secure Shell server (picoshare-perf: no wait for the network)",
        "ConditionPathExists=!/etc/ssh/sshd_not_to_be_run",
        "",
        "[Service]",
        "ExecStart=/usr/sbin/sshd -D",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=process",
        "Restart=on-failure",
        "RestartPreventExitStatus=255",
        "Type=notify",
        "RuntimeDirectory=sshd",
        "RuntimeDirectoryMode=0755",
        // The harness's channel into the VM (sshd, its sessions, the memory
        // sampler) is the last the OOM killer picks: an OOM kill ends
        // PicoShare, as it would in a cgroup, not the measurement.
        "OOMScoreAdjust=-900",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "Alias=sshd.service",
        "",
      ].join("\n"),
      mode: 0o644,
    },
    // Modules udev would load for the emulated PC's devices and CPU features
    // that a test VM never uses: each costs boot time under TCG.
    {
      path: "/etc/modprobe.d/picoshare-perf.conf",
      content: `${BLACKLISTED_MODULES.map((m) => `blacklist ${m}`).join("\n")}\n`,
      mode: 0o644,
    },
    // The journal is part of the harness's channel too (systemd-run reports through it).
    {
      path: "/etc/systemd/system/systemd-journald.service.d/picoshare-perf.conf",
      content: "[Service]\nOOMScoreAdjust=-900\n",
      mode: 0o644,
    },
    // No /run/nologin at boot (systemd-user-sessions, masked, would remove it).
    { path: "/etc/tmpfiles.d/systemd-nologin.conf", content: "", mode: 0o644 },
  ];
}

/** Commands run in the image (chroot) after the files are written. */
export const CHROOT_STEPS: string[][] = [
  ["useradd", "--create-home", "--shell", "/bin/bash", "--uid", "1000", IMAGE_USER],
  // "*": no password is valid (not "locked", which some sshd set-ups refuse for keys too).
  ["usermod", "--password", "*", IMAGE_USER],
  ["usermod", "--password", "*", "root"],
  ["useradd", "--system", "--home-dir", "/var/lib/picoshare", "--shell", "/usr/sbin/nologin", "picoshare"],
  // PicoShare's home in the guest: data and temp files on the root disk.
  ["install", "-d", "-o", "picoshare", "-g", "picoshare", "-m", "0750", "/var/lib/picoshare", "/var/lib/picoshare/data", "/var/lib/picoshare/tmp"],
  ["systemctl", "enable", "systemd-networkd.service", "ssh.service"],
  ["systemctl", "set-default", "multi-user.target"],
  ["systemctl", "mask", ...MASKED_UNITS],
  // pam_systemd only where a user manager starts (/etc/pam.d/systemd-user), not
  // in every login: an ssh login stays in ssh.service, as on a host without logind.
  ["pam-auth-update", "--disable", "systemd"],
  ["update-initramfs", "-u", "-k", "all"],
  ["apt-get", "clean"],
];
