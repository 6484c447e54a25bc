//! A stand-in for the NVIDIA driver's `nvidia-smi`, answering the queries this workspace's boot
//! scripts and health gate make (`-L`, `--query-gpu=index,name --format=csv`), in the shapes the
//! real one prints them.

use std::path::Path;

/// Writes an `nvidia-smi` into `bin` that shows `visible` GPUs of `model` (e.g.
/// `A10 (24 GB PCIe)`): `-L`, `--query-gpu=… --format=csv[,noheader]` (index, name) and the
/// bare table; none visible fails as the real one does without a driver or devices. Every
/// simulated machine has one; tests that stand in for a machine another way (an `sshd`) use
/// it too.
pub fn write_fake_nvidia_smi(bin: &Path, model: &str, visible: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(bin)?;
    let model = model.replace(['\'', '"', '\\', '$', '`'], "");
    let script = format!(
        r#"#!/bin/bash
# sim-machine: this machine's GPUs, as its simulator made them.
count={visible}
model="NVIDIA {model}"
if [ "$count" -eq 0 ]; then
  echo "No devices were found" >&2
  exit 6
fi
case " $* " in
  *" -L "*)
    for i in $(seq 0 $((count - 1))); do
      echo "GPU $i: $model (UUID: GPU-sim-$i)"
    done ;;
  *--query-gpu=*)
    case " $* " in *noheader*) ;; *) echo "index, name" ;; esac
    for i in $(seq 0 $((count - 1))); do echo "$i, $model"; done ;;
  *)
    echo "+-----------------------------------------------------------------------------+"
    echo "| NVIDIA-SMI (sim-machine)                                                    |"
    for i in $(seq 0 $((count - 1))); do echo "|   $i  $model"; done
    echo "+-----------------------------------------------------------------------------+" ;;
esac
"#
    );
    let path = bin.join("nvidia-smi");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
}
