//! The wgpu side of backend selection: the pinned graphics API, its adapters, and the decision
//! of `--backend auto` (hardware adapters only).

use super::BackendError;
use burn::tensor::Device;
use burn::tensor::wgpu::wgpu;
use std::fmt;
use std::future::Future;

#[cfg(target_os = "macos")]
const PINNED_API: burn::tensor::wgpu::WgpuBackend = burn::tensor::wgpu::WgpuBackend::Metal;
#[cfg(target_os = "windows")]
const PINNED_API: burn::tensor::wgpu::WgpuBackend = burn::tensor::wgpu::WgpuBackend::Dx12;
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
const PINNED_API: burn::tensor::wgpu::WgpuBackend = burn::tensor::wgpu::WgpuBackend::Vulkan;

/// [`PINNED_API`] as wgpu names it, for listing its adapters.
#[cfg(target_os = "macos")]
const PINNED_WGPU_BACKEND: wgpu::Backend = wgpu::Backend::Metal;
#[cfg(target_os = "windows")]
const PINNED_WGPU_BACKEND: wgpu::Backend = wgpu::Backend::Dx12;
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
const PINNED_WGPU_BACKEND: wgpu::Backend = wgpu::Backend::Vulkan;

/// What kind of device a wgpu adapter is, as far as backend choice goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterClass {
    /// A real GPU (discrete, integrated, or a virtual GPU backed by one).
    Hardware,
    /// A CPU implementation (Mesa's lavapipe / llvmpipe, SwiftShader) or an adapter that does not
    /// say what it is: burn's own CPU backend is faster than either.
    Software,
}

/// Classifies an adapter by the device type its driver reports.
pub fn classify(device_type: wgpu::DeviceType) -> AdapterClass {
    match device_type {
        wgpu::DeviceType::DiscreteGpu
        | wgpu::DeviceType::IntegratedGpu
        | wgpu::DeviceType::VirtualGpu => AdapterClass::Hardware,
        wgpu::DeviceType::Cpu | wgpu::DeviceType::Other => AdapterClass::Software,
    }
}

/// One adapter the pinned graphics API offers: its name and device type, for the log and the
/// decision of [`BackendChoice::Auto`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The driver's name for the device (`llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`).
    pub name: String,
    /// The device type the driver reports.
    pub device_type: wgpu::DeviceType,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.name, self.device_type)
    }
}

/// What `--backend auto` does with the adapters it found, and why (for the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoDecision {
    /// At least one hardware adapter: train on wgpu.
    Wgpu(String),
    /// None, or software ones only: train on burn's CPU backend.
    Cpu(String),
}

/// The decision of `--backend auto`: wgpu only when a hardware adapter exists. A software
/// adapter is a CPU pretending to be a GPU, 6-13x slower than `flex` here, so it never wins;
/// `--backend wgpu` still takes it when asked explicitly.
pub fn decide_auto(adapters: &[AdapterSummary]) -> AutoDecision {
    let listed = || {
        adapters
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(hw) = adapters
        .iter()
        .find(|a| classify(a.device_type) == AdapterClass::Hardware)
    {
        return AutoDecision::Wgpu(format!("hardware adapter {hw}"));
    }
    if adapters.is_empty() {
        AutoDecision::Cpu(format!("no {PINNED_API:?} adapter"))
    } else {
        AutoDecision::Cpu(format!(
            "only software adapters ({}); --backend wgpu uses them anyway",
            listed()
        ))
    }
}

/// The adapters of the pinned graphics API, without initialising burn's runtime on any of them.
fn list_adapters() -> Result<Vec<AdapterSummary>, String> {
    if std::env::var_os("DREAMGYM_NO_WGPU").is_some() {
        return Err("DREAMGYM_NO_WGPU is set".into());
    }
    let backends = wgpu::Backends::from(PINNED_WGPU_BACKEND);
    let result = std::panic::catch_unwind(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        // natively the enumeration is done when the call returns: one poll gets the list
        let mut future = std::pin::pin!(instance.enumerate_adapters(backends));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(adapters) => Ok(adapters
                .iter()
                .map(|a| {
                    let info = a.get_info();
                    AdapterSummary {
                        name: info.name,
                        device_type: info.device_type,
                    }
                })
                .collect()),
            std::task::Poll::Pending => Err("adapter enumeration did not complete".to_string()),
        }
    });
    result.unwrap_or_else(|_| Err("the wgpu runtime panicked while listing adapters".into()))
}

/// Initialises wgpu on the pinned graphics API; returns the device and the adapter burn chose.
fn init_wgpu() -> Result<(Device, AdapterSummary), String> {
    if std::env::var_os("DREAMGYM_NO_WGPU").is_some() {
        return Err("DREAMGYM_NO_WGPU is set".into());
    }
    // The wgpu runtime can panic deep inside driver code on broken installations; that is
    // "no adapter" too.
    let result = std::panic::catch_unwind(|| {
        Device::wgpu_options()
            .graphics_api(PINNED_API)
            .init_with_setup()
            .map(|(device, setup)| {
                let info = setup.adapter.get_info();
                (
                    device,
                    AdapterSummary {
                        name: info.name,
                        device_type: info.device_type,
                    },
                )
            })
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(r) => r,
        Err(_) => Err("the wgpu runtime panicked while looking for an adapter".into()),
    }
}

/// `--backend wgpu`: whatever adapter wgpu picks, software ones included (with a warning).
pub(super) fn wgpu_as_asked() -> Result<Device, BackendError> {
    let (device, adapter) = init_wgpu().map_err(BackendError::NoAdapter)?;
    tracing::info!("backend: wgpu ({PINNED_API:?}) on {adapter}, as asked");
    if classify(adapter.device_type) == AdapterClass::Software {
        tracing::warn!(
            "{adapter} is a software adapter: training runs on the CPU through it, many times \
             slower than --backend cpu"
        );
    }
    Ok(device)
}

/// `--backend auto`: the wgpu device when a hardware adapter exists, else `None` (the caller
/// takes the CPU backend); logs which and why either way.
pub(super) fn wgpu_if_hardware() -> Option<Device> {
    let adapters = match list_adapters() {
        Ok(a) => a,
        Err(why) => {
            tracing::info!("backend: cpu (flex): no wgpu adapter ({why})");
            return None;
        }
    };
    match decide_auto(&adapters) {
        AutoDecision::Cpu(why) => {
            tracing::info!("backend: cpu (flex): {why}");
            None
        }
        AutoDecision::Wgpu(why) => match init_wgpu() {
            Ok((device, adapter)) if classify(adapter.device_type) == AdapterClass::Hardware => {
                tracing::info!("backend: wgpu ({PINNED_API:?}) on {adapter}: {why}");
                Some(device)
            }
            Ok((_, adapter)) => {
                tracing::info!(
                    "backend: cpu (flex): wgpu came up on the software adapter {adapter}"
                );
                None
            }
            Err(e) => {
                tracing::warn!("backend: cpu (flex): {why} was listed but wgpu failed on it ({e})");
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, device_type: wgpu::DeviceType) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            device_type,
        }
    }

    #[test]
    fn auto_never_prefers_a_software_adapter() {
        let lavapipe = adapter("llvmpipe (LLVM 15.0.6, 256 bits)", wgpu::DeviceType::Cpu);
        let unknown = adapter("mystery", wgpu::DeviceType::Other);
        let gpu = adapter("NVIDIA H200", wgpu::DeviceType::DiscreteGpu);
        let igpu = adapter("Intel UHD", wgpu::DeviceType::IntegratedGpu);
        match decide_auto(std::slice::from_ref(&lavapipe)) {
            AutoDecision::Cpu(why) => assert!(why.contains("llvmpipe"), "{why}"),
            other => panic!("lavapipe alone must give the CPU backend: {other:?}"),
        }
        assert!(matches!(
            decide_auto(&[lavapipe.clone(), unknown.clone()]),
            AutoDecision::Cpu(_)
        ));
        match decide_auto(&[]) {
            AutoDecision::Cpu(why) => assert!(why.contains("no "), "{why}"),
            other => panic!("no adapter must give the CPU backend: {other:?}"),
        }
        match decide_auto(&[lavapipe.clone(), gpu]) {
            AutoDecision::Wgpu(why) => assert!(why.contains("H200"), "{why}"),
            other => panic!("a GPU beside lavapipe must be taken: {other:?}"),
        }
        assert!(matches!(decide_auto(&[igpu]), AutoDecision::Wgpu(_)));
    }
}
