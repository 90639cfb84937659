# Sourced by scripts that build AppImages (bench-cold-start.sh, fuzz.sh).
#
# write_stub_runtime FILE TYPE: writes a stand-in AppImage runtime to FILE,
# an ELF64 header (x86_64, magic "AI" TYPE at byte 8; TYPE 1 or 2) whose
# section header table, one empty entry, ends at byte 128. A type 2
# AppImage is this followed by a SquashFS image (payload offset 128); a
# type 1 AppImage is this, zero-padded to 32768 bytes, followed by an ISO
# 9660 image's bytes from 32768 on. appimagefs, the kernel's squashfs,
# squashfuse and unsquashfs only read the payload, so this stands in for a
# real runtime everywhere except where the AppImage is run itself.
write_stub_runtime() {
    local file=$1 type=$2
    [[ $type == 1 || $type == 2 ]] || { echo "write_stub_runtime: type must be 1 or 2" >&2; return 2; }
    {
        printf "\\177ELF\\002\\001\\001\\000AI\\00${type}\\000\\000\\000\\000\\000"
        printf '\002\000\076\000\001\000\000\000'
        printf '\000%.0s' $(seq 16)
        printf '\100\000\000\000\000\000\000\000'
        printf '\000\000\000\000\100\000\000\000\000\000\100\000\001\000\000\000'
        printf '\000%.0s' $(seq 64)
    } >"$file"
}
