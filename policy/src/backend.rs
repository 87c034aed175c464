//! Backend selection: wgpu (Vulkan, Metal or DX12 pinned) on a hardware adapter, burn's `flex`
//! CPU backend otherwise.
//!
//! `auto` lists the pinned API's adapters first and takes wgpu only when one of them is a real
//! GPU: a software adapter (Mesa's lavapipe) runs the same kernels on the CPU, 6-13x slower than
//! `flex` on these machines, so it counts as no adapter. `wgpu` takes whatever adapter wgpu
//! picks, software ones included, with a warning.
//!
//! wgpu's automatic API choice picks OpenGL on machines with Mesa GL only, and its first training
//! step deadlocks there, so the graphics API is pinned per platform and anything else counts as
//! "no adapter".

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::fmt;

#[cfg(feature = "wgpu")]
mod adapters;
#[cfg(feature = "wgpu")]
pub use adapters::{AdapterClass, AdapterSummary, AutoDecision, classify, decide_auto};

/// Which backend the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// wgpu on a hardware adapter, else the CPU backend (the log says which and why).
    #[default]
    Auto,
    /// wgpu or an error; takes a software adapter (lavapipe) too, which is how CI tests the
    /// wgpu path on machines without a GPU.
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

fn cpu() -> SelectedDevice {
    SelectedDevice {
        kind: BackendKind::Cpu,
        device: Device::flex(),
    }
}

/// Picks the device for `choice` and logs which one and why.
pub fn select_device(choice: BackendChoice) -> Result<SelectedDevice, BackendError> {
    match choice {
        BackendChoice::Cpu => {
            tracing::info!("backend: cpu (flex), as asked");
            Ok(cpu())
        }
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => adapters::wgpu_as_asked().map(|device| SelectedDevice {
            kind: BackendKind::Wgpu,
            device,
        }),
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Wgpu => Err(BackendError::NoAdapter(
            "this build has no wgpu support (built without the `wgpu` feature)".into(),
        )),
        #[cfg(feature = "wgpu")]
        BackendChoice::Auto => Ok(adapters::wgpu_if_hardware()
            .map(|device| SelectedDevice {
                kind: BackendKind::Wgpu,
                device,
            })
            .unwrap_or_else(cpu)),
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Auto => {
            tracing::info!("backend: cpu (flex): built without the `wgpu` feature");
            Ok(cpu())
        }
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
