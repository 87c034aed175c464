//! Backend selection: wgpu (Vulkan, Metal or DX12 pinned) where an adapter exists, burn's `flex`
//! CPU backend otherwise.
//!
//! wgpu's automatic API choice picks OpenGL on machines with Mesa GL only, and its first training
//! step deadlocks there, so the graphics API is pinned per platform and anything else counts as
//! "no adapter".

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which backend the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// wgpu when an adapter is found, else the CPU backend (one log line says so).
    #[default]
    Auto,
    /// wgpu or an error.
    Wgpu,
    /// burn's `flex` CPU backend.
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "wgpu" => Ok(Self::Wgpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!(
                "unknown backend `{other}`: expected auto, wgpu or cpu"
            )),
        }
    }
}

/// The backend actually in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// wgpu on a (possibly software) GPU adapter.
    Wgpu,
    /// burn's `flex` CPU backend.
    Cpu,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wgpu => "wgpu",
            Self::Cpu => "cpu",
        })
    }
}

/// A selected device: the inference device and its autodiff twin for updates.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// Which backend.
    pub kind: BackendKind,
    /// The plain device.
    pub device: Device,
}

impl SelectedDevice {
    /// The device with autodiff enabled, for training.
    pub fn autodiff(&self) -> Device {
        self.device.clone().autodiff()
    }
}

/// Errors of backend selection.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `--backend wgpu` was asked for and no adapter was found.
    #[error("--backend wgpu: no usable wgpu adapter ({0}); use --backend cpu or auto")]
    NoAdapter(String),
}

#[cfg(target_os = "macos")]
const PINNED_API: burn::tensor::wgpu::WgpuBackend = burn::tensor::wgpu::WgpuBackend::Metal;
#[cfg(target_os = "windows")]
const PINNED_API: burn::tensor::wgpu::WgpuBackend = burn::tensor::wgpu::WgpuBackend::Dx12;
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
const PINNED_API: burn::tensor::wgpu::WgpuBackend = burn::tensor::wgpu::WgpuBackend::Vulkan;

/// Initialises wgpu on the pinned graphics API.
fn init_wgpu() -> Result<Device, String> {
    if std::env::var_os("DREAMGYM_NO_WGPU").is_some() {
        return Err("DREAMGYM_NO_WGPU is set".into());
    }
    // The wgpu runtime can panic deep inside driver code on broken installations; that is
    // "no adapter" too.
    let result = std::panic::catch_unwind(|| {
        Device::wgpu_options()
            .graphics_api(PINNED_API)
            .init()
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(r) => r,
        Err(_) => Err("the wgpu runtime panicked while looking for an adapter".into()),
    }
}

/// Picks the device for `choice`. `Auto` logs one line when it falls back to the CPU.
pub fn select_device(choice: BackendChoice) -> Result<SelectedDevice, BackendError> {
    match choice {
        BackendChoice::Cpu => Ok(SelectedDevice {
            kind: BackendKind::Cpu,
            device: Device::flex(),
        }),
        BackendChoice::Wgpu => init_wgpu()
            .map(|device| SelectedDevice {
                kind: BackendKind::Wgpu,
                device,
            })
            .map_err(BackendError::NoAdapter),
        BackendChoice::Auto => match init_wgpu() {
            Ok(device) => {
                tracing::info!("backend: wgpu ({PINNED_API:?})");
                Ok(SelectedDevice {
                    kind: BackendKind::Wgpu,
                    device,
                })
            }
            Err(why) => {
                tracing::warn!("no wgpu adapter ({why}); falling back to the CPU backend (flex)");
                Ok(SelectedDevice {
                    kind: BackendKind::Cpu,
                    device: Device::flex(),
                })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices_and_rejects_others() {
        assert_eq!(
            "auto".parse::<BackendChoice>().unwrap(),
            BackendChoice::Auto
        );
        assert_eq!("cpu".parse::<BackendChoice>().unwrap(), BackendChoice::Cpu);
        assert!(
            "cuda"
                .parse::<BackendChoice>()
                .unwrap_err()
                .contains("expected auto")
        );
    }

    #[test]
    fn cpu_is_always_available() {
        let d = select_device(BackendChoice::Cpu).unwrap();
        assert_eq!(d.kind, BackendKind::Cpu);
    }
}
