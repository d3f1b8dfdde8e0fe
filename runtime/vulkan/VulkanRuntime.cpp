//===- VulkanRuntime.cpp - the thin Vulkan runtime --------------*- C++ -*-===//
//
// The device, its buffers, pipelines and per-call command recording behind
// VulkanRuntime.h. The loader is opened with dlopen and every entry point
// fetched through vkGetInstanceProcAddr/vkGetDeviceProcAddr.
//
//===----------------------------------------------------------------------===//
#define VK_NO_PROTOTYPES
#include "runtime/vulkan/VulkanRuntime.h"
#include "runtime/Numerics.h"

#include <vulkan/vulkan.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <set>

using namespace mlx::vk;

namespace {

#define MLX_VK_INSTANCE_FUNCTIONS(X)                                           \
  X(vkDestroyInstance)                                                         \
  X(vkEnumeratePhysicalDevices)                                                \
  X(vkGetPhysicalDeviceProperties)                                             \
  X(vkGetPhysicalDeviceProperties2)                                            \
  X(vkGetPhysicalDeviceFeatures2)                                              \
  X(vkGetPhysicalDeviceQueueFamilyProperties)                                  \
  X(vkGetPhysicalDeviceMemoryProperties)                                       \
  X(vkCreateDevice)                                                            \
  X(vkGetDeviceProcAddr)

#define MLX_VK_DEVICE_FUNCTIONS(X)                                             \
  X(vkGetDeviceQueue)                                                          \
  X(vkCreateBuffer)                                                            \
  X(vkDestroyBuffer)                                                           \
  X(vkGetBufferMemoryRequirements)                                             \
  X(vkAllocateMemory)                                                          \
  X(vkFreeMemory)                                                              \
  X(vkBindBufferMemory)                                                        \
  X(vkMapMemory)                                                               \
  X(vkCreateShaderModule)                                                      \
  X(vkDestroyShaderModule)                                                     \
  X(vkCreateDescriptorSetLayout)                                               \
  X(vkDestroyDescriptorSetLayout)                                              \
  X(vkCreatePipelineLayout)                                                    \
  X(vkDestroyPipelineLayout)                                                   \
  X(vkCreateComputePipelines)                                                  \
  X(vkDestroyPipeline)                                                         \
  X(vkCreatePipelineCache)                                                     \
  X(vkCreateDescriptorPool)                                                    \
  X(vkDestroyDescriptorPool)                                                   \
  X(vkResetDescriptorPool)                                                     \
  X(vkAllocateDescriptorSets)                                                  \
  X(vkUpdateDescriptorSets)                                                    \
  X(vkCreateCommandPool)                                                       \
  X(vkDestroyCommandPool)                                                      \
  X(vkResetCommandPool)                                                        \
  X(vkAllocateCommandBuffers)                                                  \
  X(vkBeginCommandBuffer)                                                      \
  X(vkEndCommandBuffer)                                                        \
  X(vkCmdBindPipeline)                                                         \
  X(vkCmdBindDescriptorSets)                                                   \
  X(vkCmdPushConstants)                                                        \
  X(vkCmdDispatch)                                                             \
  X(vkCmdDispatchBase)                                                         \
  X(vkCmdPipelineBarrier)                                                      \
  X(vkQueueSubmit)                                                             \
  X(vkCreateFence)                                                             \
  X(vkDestroyFence)                                                            \
  X(vkWaitForFences)                                                           \
  X(vkResetFences)

#define MLX_VK_DECLARE(name) PFN_##name name = nullptr;

/// MLX_VULKAN_TRACE=1 prints each allocation, free, launch and submit.
bool tracing() {
  static const bool on = [] {
    const char *v = std::getenv("MLX_VULKAN_TRACE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

/// What VkResult a call returned, by name, for error messages.
std::string resultName(VkResult r) {
  switch (r) {
#define MLX_VK_RESULT(name)                                                    \
  case name:                                                                   \
    return #name;
    MLX_VK_RESULT(VK_SUCCESS)
    MLX_VK_RESULT(VK_NOT_READY)
    MLX_VK_RESULT(VK_TIMEOUT)
    MLX_VK_RESULT(VK_INCOMPLETE)
    MLX_VK_RESULT(VK_ERROR_OUT_OF_HOST_MEMORY)
    MLX_VK_RESULT(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    MLX_VK_RESULT(VK_ERROR_INITIALIZATION_FAILED)
    MLX_VK_RESULT(VK_ERROR_DEVICE_LOST)
    MLX_VK_RESULT(VK_ERROR_MEMORY_MAP_FAILED)
    MLX_VK_RESULT(VK_ERROR_LAYER_NOT_PRESENT)
    MLX_VK_RESULT(VK_ERROR_EXTENSION_NOT_PRESENT)
    MLX_VK_RESULT(VK_ERROR_FEATURE_NOT_PRESENT)
    MLX_VK_RESULT(VK_ERROR_INCOMPATIBLE_DRIVER)
    MLX_VK_RESULT(VK_ERROR_TOO_MANY_OBJECTS)
    MLX_VK_RESULT(VK_ERROR_FORMAT_NOT_SUPPORTED)
    MLX_VK_RESULT(VK_ERROR_FRAGMENTED_POOL)
    MLX_VK_RESULT(VK_ERROR_OUT_OF_POOL_MEMORY)
    MLX_VK_RESULT(VK_ERROR_INVALID_SHADER_NV)
#undef MLX_VK_RESULT
  default:
    return "VkResult " + std::to_string((int)r);
  }
}

std::string failed(const char *what, VkResult r) {
  return std::string(what) + " failed: " + resultName(r);
}

std::string deviceKind(VkPhysicalDeviceType type) {
  switch (type) {
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
    return "discrete GPU";
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
    return "integrated GPU";
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
    return "virtual GPU";
  case VK_PHYSICAL_DEVICE_TYPE_CPU:
    return "CPU";
  default:
    return "other";
  }
}

/// Lower is preferred.
int deviceRank(VkPhysicalDeviceType type) {
  switch (type) {
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
    return 0;
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
    return 1;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
    return 2;
  case VK_PHYSICAL_DEVICE_TYPE_CPU:
    return 3;
  default:
    return 4;
  }
}

/// Messages of the validation layer not yet reported to a call.
std::mutex validationMutex;
std::vector<std::string> validationMessages;

VKAPI_ATTR VkBool32 VKAPI_CALL
onValidationMessage(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                    VkDebugUtilsMessageTypeFlagsEXT,
                    const VkDebugUtilsMessengerCallbackDataEXT *data, void *) {
  if (severity < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)
    return VK_FALSE;
  std::lock_guard<std::mutex> lock(validationMutex);
  validationMessages.push_back(data && data->pMessage ? data->pMessage : "?");
  return VK_FALSE;
}

/// A buffer of the runtime, mapped into the host's address space.
struct Buffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  char *mapped = nullptr;
  size_t size = 0;
};

/// The one device of the process.
struct Device {
  void *loader = nullptr;
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  MLX_VK_INSTANCE_FUNCTIONS(MLX_VK_DECLARE)
  MLX_VK_DEVICE_FUNCTIONS(MLX_VK_DECLARE)
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  uint32_t queueFamily = 0;
  uint32_t memoryType = 0;
  VkDeviceSize offsetAlignment = 16;
  VkPipelineCache pipelineCache = VK_NULL_HANDLE;
  bool validation = false;
  DeviceInfo info;
  std::mutex queueMutex;

  /// Live buffers by their mapped address (for address → buffer lookups),
  /// and the host memory handed out where the device had none.
  std::mutex buffersMutex;
  std::map<const char *, Buffer> buffers;
  std::set<void *> hostFallbacks;

  std::string open();
  std::string createBuffer(size_t bytes, Buffer &out);
  void destroyBuffer(const Buffer &b);
  /// The buffer holding address `p`, and p's offset in it.
  const Buffer *find(const void *p, size_t &offset);
};

std::string Device::open() {
  loader = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!loader)
    return "cannot load the Vulkan loader libvulkan.so.1 (Debian package "
           "libvulkan1): " +
           std::string(dlerror());
  vkGetInstanceProcAddr = reinterpret_cast<PFN_vkGetInstanceProcAddr>(
      dlsym(loader, "vkGetInstanceProcAddr"));
  if (!vkGetInstanceProcAddr)
    return "the Vulkan loader has no vkGetInstanceProcAddr";
  auto vkCreateInstance = reinterpret_cast<PFN_vkCreateInstance>(
      vkGetInstanceProcAddr(nullptr, "vkCreateInstance"));
  auto vkEnumerateInstanceLayerProperties =
      reinterpret_cast<PFN_vkEnumerateInstanceLayerProperties>(
          vkGetInstanceProcAddr(nullptr, "vkEnumerateInstanceLayerProperties"));
  if (!vkCreateInstance || !vkEnumerateInstanceLayerProperties)
    return "the Vulkan loader has no vkCreateInstance";

  const char *validate = std::getenv("MLX_VULKAN_VALIDATION");
  validation = validate && *validate && std::string(validate) != "0";
  std::vector<const char *> layers, extensions;
  if (validation) {
    uint32_t count = 0;
    vkEnumerateInstanceLayerProperties(&count, nullptr);
    std::vector<VkLayerProperties> available(count);
    vkEnumerateInstanceLayerProperties(&count, available.data());
    bool found = std::any_of(available.begin(), available.end(), [](auto &l) {
      return std::strcmp(l.layerName, "VK_LAYER_KHRONOS_validation") == 0;
    });
    if (!found)
      return "MLX_VULKAN_VALIDATION is set but the layer "
             "VK_LAYER_KHRONOS_validation is not installed (Debian package "
             "vulkan-validationlayers)";
    layers.push_back("VK_LAYER_KHRONOS_validation");
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "mlxc";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo instanceInfo{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  instanceInfo.pApplicationInfo = &app;
  instanceInfo.enabledLayerCount = (uint32_t)layers.size();
  instanceInfo.ppEnabledLayerNames = layers.data();
  instanceInfo.enabledExtensionCount = (uint32_t)extensions.size();
  instanceInfo.ppEnabledExtensionNames = extensions.data();
  VkDebugUtilsMessengerCreateInfoEXT messengerInfo{
      VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  messengerInfo.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  messengerInfo.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                              VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                              VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messengerInfo.pfnUserCallback = onValidationMessage;
  if (validation)
    instanceInfo.pNext = &messengerInfo;
  if (VkResult r = vkCreateInstance(&instanceInfo, nullptr, &instance))
    return r == VK_ERROR_INCOMPATIBLE_DRIVER
               ? "no Vulkan driver (vkCreateInstance: "
                 "VK_ERROR_INCOMPATIBLE_DRIVER; Debian's mesa-vulkan-drivers "
                 "has lavapipe, a CPU device)"
               : failed("vkCreateInstance", r);
#define MLX_VK_LOAD_INSTANCE(name)                                             \
  name = reinterpret_cast<PFN_##name>(vkGetInstanceProcAddr(instance, #name)); \
  if (!name)                                                                   \
    return "the Vulkan instance has no " #name;
  MLX_VK_INSTANCE_FUNCTIONS(MLX_VK_LOAD_INSTANCE)
  if (validation) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT"));
    VkDebugUtilsMessengerEXT messenger;
    if (!create || create(instance, &messengerInfo, nullptr, &messenger))
      return "cannot install the validation layer's message callback";
  }

  // The devices with a compute queue.
  uint32_t count = 0;
  if (VkResult r = vkEnumeratePhysicalDevices(instance, &count, nullptr))
    return failed("vkEnumeratePhysicalDevices", r);
  std::vector<VkPhysicalDevice> all(count);
  vkEnumeratePhysicalDevices(instance, &count, all.data());
  struct Candidate {
    VkPhysicalDevice device;
    VkPhysicalDeviceProperties props;
    uint32_t family;
  };
  std::vector<Candidate> candidates;
  for (VkPhysicalDevice d : all) {
    Candidate c{d, {}, 0};
    vkGetPhysicalDeviceProperties(d, &c.props);
    uint32_t families = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(d, &families, nullptr);
    std::vector<VkQueueFamilyProperties> queues(families);
    vkGetPhysicalDeviceQueueFamilyProperties(d, &families, queues.data());
    for (uint32_t q = 0; q < families; ++q)
      if (queues[q].queueFlags & VK_QUEUE_COMPUTE_BIT) {
        c.family = q;
        candidates.push_back(c);
        break;
      }
  }
  if (candidates.empty())
    return "no Vulkan device with a compute queue (install "
           "mesa-vulkan-drivers for lavapipe, a CPU device; VK_ICD_FILENAMES "
           "names the drivers the loader tries)";
  auto list = [&] {
    std::string text;
    for (size_t k = 0; k < candidates.size(); ++k)
      text += (k ? ", " : "") + std::to_string(k) + ": " +
              candidates[k].props.deviceName;
    return text;
  };
  size_t chosen = 0;
  if (const char *want = std::getenv("MLX_VULKAN_DEVICE"); want && *want) {
    std::string w = want;
    char *end = nullptr;
    long index = std::strtol(want, &end, 10);
    if (*end == 0) {
      if (index < 0 || (size_t)index >= candidates.size())
        return "MLX_VULKAN_DEVICE=" + w + " is out of range: there " +
               (candidates.size() == 1
                    ? "is 1 device"
                    : "are " + std::to_string(candidates.size()) + " devices") +
               " (" + list() + ")";
      chosen = (size_t)index;
    } else {
      chosen = candidates.size();
      for (size_t k = 0; k < candidates.size(); ++k)
        if (std::string(candidates[k].props.deviceName).find(w) !=
            std::string::npos) {
          chosen = k;
          break;
        }
      if (chosen == candidates.size())
        return "MLX_VULKAN_DEVICE='" + w + "' names no device (" + list() + ")";
    }
  } else {
    for (size_t k = 1; k < candidates.size(); ++k)
      if (deviceRank(candidates[k].props.deviceType) <
          deviceRank(candidates[chosen].props.deviceType))
        chosen = k;
  }
  const Candidate &c = candidates[chosen];
  physical = c.device;
  queueFamily = c.family;

  // What the device can do.
  info.name = c.props.deviceName;
  info.kind = deviceKind(c.props.deviceType);
  info.apiVersion = c.props.apiVersion;
  const VkPhysicalDeviceLimits &limits = c.props.limits;
  info.maxWorkgroupInvocations = limits.maxComputeWorkGroupInvocations;
  for (int k = 0; k < 3; ++k)
    info.maxWorkgroupCount[k] = limits.maxComputeWorkGroupCount[k];
  info.maxStorageBufferRange = limits.maxStorageBufferRange;
  info.maxPushConstantsSize = limits.maxPushConstantsSize;
  info.maxStorageBuffersPerStage = limits.maxPerStageDescriptorStorageBuffers;
  info.maxSharedMemory = limits.maxComputeSharedMemorySize;
  offsetAlignment =
      std::max<VkDeviceSize>(16, limits.minStorageBufferOffsetAlignment);
  VkPhysicalDeviceSubgroupProperties subgroup{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceMaintenance3Properties maintenance3{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceDriverProperties driver{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  bool v12 = c.props.apiVersion >= VK_API_VERSION_1_2;
  subgroup.pNext = &maintenance3;
  if (v12)
    maintenance3.pNext = &driver;
  VkPhysicalDeviceProperties2 props2{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(physical, &props2);
  info.subgroupSize = subgroup.subgroupSize;
  info.maxAllocationSize = maintenance3.maxMemoryAllocationSize;
  info.driver = v12 ? std::string(driver.driverName) + " " + driver.driverInfo
                    : "driver " + std::to_string(c.props.driverVersion);

  VkPhysicalDeviceVulkan12Features features12{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceFeatures2 features{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  if (v12)
    features.pNext = &features12;
  vkGetPhysicalDeviceFeatures2(physical, &features);
  info.float64 = features.features.shaderFloat64;
  info.int64 = features.features.shaderInt64;
  info.int16 = features.features.shaderInt16;
  info.int8 = v12 && features12.shaderInt8;
  info.storage8 = v12 && features12.storageBuffer8BitAccess;

  // Enable exactly what the SPIR-V capabilities will use.
  VkPhysicalDeviceFeatures2 enable{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  enable.features.shaderFloat64 = info.float64;
  enable.features.shaderInt64 = info.int64;
  enable.features.shaderInt16 = info.int16;
  VkPhysicalDeviceVulkan12Features enable12{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  enable12.shaderInt8 = info.int8;
  enable12.storageBuffer8BitAccess = info.storage8;
  if (v12)
    enable.pNext = &enable12;
  float priority = 1.0f;
  VkDeviceQueueCreateInfo queueInfo{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queueInfo.queueFamilyIndex = queueFamily;
  queueInfo.queueCount = 1;
  queueInfo.pQueuePriorities = &priority;
  VkDeviceCreateInfo deviceInfo{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  deviceInfo.pNext = &enable;
  deviceInfo.queueCreateInfoCount = 1;
  deviceInfo.pQueueCreateInfos = &queueInfo;
  if (VkResult r = vkCreateDevice(physical, &deviceInfo, nullptr, &device))
    return failed("vkCreateDevice", r);
#define MLX_VK_LOAD_DEVICE(name)                                               \
  name = reinterpret_cast<PFN_##name>(vkGetDeviceProcAddr(device, #name));     \
  if (!name)                                                                   \
    return "the Vulkan device has no " #name;
  MLX_VK_DEVICE_FUNCTIONS(MLX_VK_LOAD_DEVICE)
  vkGetDeviceQueue(device, queueFamily, 0, &queue);

  // Host-visible, coherent memory (device-local too where there is such).
  VkPhysicalDeviceMemoryProperties memory;
  vkGetPhysicalDeviceMemoryProperties(physical, &memory);
  const VkMemoryPropertyFlags need = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                     VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  int best = -1;
  for (uint32_t k = 0; k < memory.memoryTypeCount; ++k) {
    VkMemoryPropertyFlags flags = memory.memoryTypes[k].propertyFlags;
    if ((flags & need) != need)
      continue;
    if (best < 0 || ((flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) &&
                     !(memory.memoryTypes[best].propertyFlags &
                       VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)))
      best = (int)k;
  }
  if (best < 0)
    return "the Vulkan device '" + info.name +
           "' has no host-visible coherent memory";
  memoryType = (uint32_t)best;
  VkPipelineCacheCreateInfo cacheInfo{
      VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  if (VkResult r =
          vkCreatePipelineCache(device, &cacheInfo, nullptr, &pipelineCache))
    return failed("vkCreatePipelineCache", r);
  return "";
}

std::string Device::createBuffer(size_t bytes, Buffer &out) {
  size_t size = std::max<size_t>(16, (bytes + 15) / 16 * 16);
  if (info.maxAllocationSize && size > info.maxAllocationSize)
    return "a tensor of " + std::to_string(bytes) +
           " bytes is larger than the Vulkan device's largest allocation (" +
           std::to_string(info.maxAllocationSize) + " bytes)";
  VkBufferCreateInfo bufferInfo{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bufferInfo.size = size;
  bufferInfo.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                     VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  bufferInfo.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  Buffer b;
  b.size = size;
  if (VkResult r = vkCreateBuffer(device, &bufferInfo, nullptr, &b.buffer))
    return failed("vkCreateBuffer", r);
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device, b.buffer, &req);
  VkMemoryAllocateInfo allocInfo{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  allocInfo.allocationSize = req.size;
  allocInfo.memoryTypeIndex = memoryType;
  if (VkResult r = vkAllocateMemory(device, &allocInfo, nullptr, &b.memory)) {
    vkDestroyBuffer(device, b.buffer, nullptr);
    return failed(("allocating " + std::to_string(bytes) +
                   " bytes of Vulkan device memory (vkAllocateMemory)")
                      .c_str(),
                  r);
  }
  void *mapped = nullptr;
  VkResult r = vkBindBufferMemory(device, b.buffer, b.memory, 0);
  if (r == VK_SUCCESS)
    r = vkMapMemory(device, b.memory, 0, VK_WHOLE_SIZE, 0, &mapped);
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(device, b.buffer, nullptr);
    vkFreeMemory(device, b.memory, nullptr);
    return failed("mapping Vulkan device memory", r);
  }
  b.mapped = static_cast<char *>(mapped);
  out = b;
  std::lock_guard<std::mutex> lock(buffersMutex);
  buffers[b.mapped] = b;
  return "";
}

void Device::destroyBuffer(const Buffer &b) {
  vkDestroyBuffer(device, b.buffer, nullptr);
  vkFreeMemory(device, b.memory, nullptr); // (unmaps)
}

const Buffer *Device::find(const void *p, size_t &offset) {
  std::lock_guard<std::mutex> lock(buffersMutex);
  auto it = buffers.upper_bound(static_cast<const char *>(p));
  if (it == buffers.begin())
    return nullptr;
  --it;
  auto *c = static_cast<const char *>(p);
  if (c >= it->first + it->second.size)
    return nullptr;
  offset = (size_t)(c - it->first);
  return &it->second;
}

Device *theDevice(std::string *error = nullptr) {
  static Device device;
  static std::string openError = device.open();
  if (!openError.empty()) {
    if (error)
      *error = openError;
    return nullptr;
  }
  return &device;
}

} // namespace

const DeviceInfo *mlx::vk::device(std::string &error) {
  Device *d = theDevice(&error);
  return d ? &d->info : nullptr;
}

mlx::rt::Tensor mlx::vk::toDevice(const rt::Tensor &t) {
  rt::Tensor c = t.contiguous();
  size_t offset = 0;
  if (Device *d = theDevice(); d && c.data() && d->find(c.data(), offset) &&
                               offset % d->offsetAlignment == 0)
    return c; // a kernel can bind it where it is

  size_t bytes = (size_t)c.numElements() * rt::dtypeSize(c.dtype());
  std::shared_ptr<void> memory(mlx_vk_malloc(bytes), mlx_vk_free);
  if (bytes)
    std::memcpy(memory.get(), c.data(), bytes);
  return rt::Tensor::view(c.dtype(), c.shape(), c.strides(), memory.get(),
                          memory);
}

std::vector<mlx::rt::Tensor>
mlx::vk::call(const Program &program, void (*entry)(void **),
              const rt::Signature &sig, const std::vector<rt::Tensor> &args) {
  std::vector<rt::Tensor> onDevice;
  for (const rt::Tensor &a : args)
    onDevice.push_back(toDevice(a));
  CallScope scope(program);
  std::vector<rt::Tensor> results =
      rt::callPacked(entry, sig, onDevice, mlx_vk_free,
                     [&](void (*fn)(void **), void **packed) {
                       return scope.run(fn, packed);
                     });
  scope.finish();
  return results;
}

bool mlx::vk::isDeviceMemory(const void *p) {
  Device *d = theDevice();
  size_t offset;
  return d && d->find(p, offset);
}

//===----------------------------------------------------------------------===//
// Programs
//===----------------------------------------------------------------------===//

struct mlx::vk::Program::Impl {
  struct Pipeline {
    VkShaderModule shader = VK_NULL_HANDLE;
    VkDescriptorSetLayout setLayout = VK_NULL_HANDLE;
    VkPipelineLayout layout = VK_NULL_HANDLE;
    VkPipeline pipeline = VK_NULL_HANDLE;
  };
  std::vector<KernelSpec> kernels;
  std::vector<Pipeline> pipelines;
  /// The storage-buffer descriptors of the largest kernel.
  uint32_t maxBindings = 1;
};

std::unique_ptr<Program> Program::create(std::vector<KernelSpec> kernels,
                                         std::string &error) {
  Device *d = theDevice(&error);
  if (!d)
    return nullptr;
  auto impl = std::make_unique<Impl>();
  std::unique_ptr<Program> program(new Program(std::move(impl)));
  Impl &p = *program->impl;
  p.kernels = std::move(kernels);
  for (const KernelSpec &k : p.kernels) {
    Impl::Pipeline pipe;
    p.pipelines.push_back(pipe);
    Impl::Pipeline &pl = p.pipelines.back();
    VkShaderModuleCreateInfo shaderInfo{
        VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    shaderInfo.codeSize = k.spirv.size() * 4;
    shaderInfo.pCode = k.spirv.data();
    if (VkResult r = d->vkCreateShaderModule(d->device, &shaderInfo, nullptr,
                                             &pl.shader)) {
      error = "the Vulkan driver rejects kernel '" + k.name +
              "': " + failed("vkCreateShaderModule", r);
      return nullptr;
    }
    // Binding b is argument b, but for push constants (no binding).
    std::vector<VkDescriptorSetLayoutBinding> bindings;
    bool pushes = false;
    for (uint32_t b = 0; b < k.args.size(); ++b) {
      if (k.args[b] == ArgKind::PushConstants) {
        pushes = true;
        continue;
      }
      VkDescriptorSetLayoutBinding binding{};
      binding.binding = b;
      binding.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      binding.descriptorCount = 1;
      binding.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
      bindings.push_back(binding);
    }
    if (pushes && k.paramBytes > d->info.maxPushConstantsSize) {
      error = "kernel '" + k.name + "' takes " + std::to_string(k.paramBytes) +
              " bytes of push constants; the device has " +
              std::to_string(d->info.maxPushConstantsSize);
      return nullptr;
    }
    p.maxBindings = std::max<uint32_t>(p.maxBindings, bindings.size());
    VkDescriptorSetLayoutCreateInfo setInfo{
        VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    setInfo.bindingCount = (uint32_t)bindings.size();
    setInfo.pBindings = bindings.data();
    if (VkResult r = d->vkCreateDescriptorSetLayout(d->device, &setInfo,
                                                    nullptr, &pl.setLayout)) {
      error = failed("vkCreateDescriptorSetLayout", r);
      return nullptr;
    }
    VkPipelineLayoutCreateInfo layoutInfo{
        VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    layoutInfo.setLayoutCount = 1;
    layoutInfo.pSetLayouts = &pl.setLayout;
    VkPushConstantRange pushRange{VK_SHADER_STAGE_COMPUTE_BIT, 0, k.paramBytes};
    if (pushes) {
      layoutInfo.pushConstantRangeCount = 1;
      layoutInfo.pPushConstantRanges = &pushRange;
    }
    if (VkResult r = d->vkCreatePipelineLayout(d->device, &layoutInfo, nullptr,
                                               &pl.layout)) {
      error = failed("vkCreatePipelineLayout", r);
      return nullptr;
    }
    VkComputePipelineCreateInfo pipelineInfo{
        VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    // Grids over the device's workgroup count run as several dispatches
    // with a base workgroup (vkCmdDispatchBase).
    pipelineInfo.flags = VK_PIPELINE_CREATE_DISPATCH_BASE_BIT;
    pipelineInfo.stage.sType =
        VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    pipelineInfo.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    pipelineInfo.stage.module = pl.shader;
    pipelineInfo.stage.pName = k.name.c_str();
    pipelineInfo.layout = pl.layout;
    if (VkResult r =
            d->vkCreateComputePipelines(d->device, d->pipelineCache, 1,
                                        &pipelineInfo, nullptr, &pl.pipeline)) {
      error = "the Vulkan driver rejects kernel '" + k.name +
              "': " + failed("vkCreateComputePipelines", r);
      return nullptr;
    }
  }
  return program;
}

Program::Program(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}

Program::~Program() {
  Device *d = theDevice();
  if (!d)
    return;
  for (const Impl::Pipeline &pl : impl->pipelines) {
    if (pl.pipeline)
      d->vkDestroyPipeline(d->device, pl.pipeline, nullptr);
    if (pl.layout)
      d->vkDestroyPipelineLayout(d->device, pl.layout, nullptr);
    if (pl.setLayout)
      d->vkDestroyDescriptorSetLayout(d->device, pl.setLayout, nullptr);
    if (pl.shader)
      d->vkDestroyShaderModule(d->device, pl.shader, nullptr);
  }
}

const std::vector<KernelSpec> &Program::kernels() const {
  return impl->kernels;
}

//===----------------------------------------------------------------------===//
// Calls
//===----------------------------------------------------------------------===//

namespace {

/// What one call records into: reused by later calls (a free list), since
/// command pools, fences and descriptor pools are slow to make.
struct Recorder {
  VkCommandPool pool = VK_NULL_HANDLE;
  VkCommandBuffer commands = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;
  std::vector<VkDescriptorPool> descriptorPools;
  size_t currentPool = 0;
  /// Kernels' parameter blocks, one aligned slot each.
  std::vector<Buffer> arenas;
  size_t currentArena = 0, arenaUsed = 0;
  /// What kernels report (ArgKind::Report), zero between calls.
  Buffer reports;
};

constexpr size_t kReportBytes = 8 * sizeof(int32_t);

constexpr size_t kArenaBytes = 64 * 1024;
constexpr uint32_t kSetsPerPool = 256;

std::mutex recordersMutex;
std::vector<std::unique_ptr<Recorder>> idleRecorders;

} // namespace

struct mlx::vk::CallScope::Impl {
  Device *device = nullptr;
  const Program::Impl *program = nullptr;
  std::unique_ptr<Recorder> rec;
  bool recording = false;
  unsigned dispatches = 0; ///< since the last submit
  bool hasError = false;
  /// Buffers freed while dispatches that may use them are recorded.
  std::vector<void *> deferredFrees;
  size_t validationSeen = 0;
  /// What the call allocated and has not freed (its results, at the end).
  std::set<void *> live;
  /// Where run() resumes when the host code cannot go on.
  std::jmp_buf abortPoint;
  bool running = false;

  void error(const std::string &message) {
    if (!hasError)
      mlx::rt::reportCallError(message);
    hasError = true;
  }
  bool begin();
  VkDescriptorSet descriptorSet(VkDescriptorSetLayout layout);
  bool paramSlot(const void *bits, size_t bytes, VkDescriptorBufferInfo &out);
  void launch(int64_t kernel, const int64_t grid[3], const int64_t *args);
  void submit();
  void checkValidation();
};

namespace {
thread_local mlx::vk::CallScope::Impl *currentCall = nullptr;

void freeNow(Device *d, void *p) {
  {
    std::lock_guard<std::mutex> lock(d->buffersMutex);
    if (d->hostFallbacks.erase(p)) {
      std::free(p);
      return;
    }
    auto it = d->buffers.find(static_cast<const char *>(p));
    if (it == d->buffers.end())
      return;
    Buffer b = it->second;
    d->buffers.erase(it);
    d->destroyBuffer(b);
  }
}
} // namespace

CallScope::CallScope(const Program &program) : impl(std::make_unique<Impl>()) {
  impl->device = theDevice();
  impl->program = program.impl.get();
  {
    std::lock_guard<std::mutex> lock(recordersMutex);
    if (!idleRecorders.empty()) {
      impl->rec = std::move(idleRecorders.back());
      idleRecorders.pop_back();
    }
  }
  {
    std::lock_guard<std::mutex> lock(validationMutex);
    impl->validationSeen = validationMessages.size();
  }
  currentCall = impl.get();
}

CallScope::~CallScope() {
  if (impl->recording)
    finish();
  currentCall = nullptr;
  if (impl->rec) {
    std::lock_guard<std::mutex> lock(recordersMutex);
    idleRecorders.push_back(std::move(impl->rec));
  }
}

/// Ends the host code of the calling thread's call (CallScope::run) after
/// an error it cannot continue from. Frames between here and run() are the
/// JIT's and this file's C entry points, which hold nothing to destroy.
[[noreturn]] static void abortCall(CallScope::Impl &call) {
  std::longjmp(call.abortPoint, 1);
}

bool CallScope::run(void (*entry)(void **), void **args) {
  impl->running = true;
  if (setjmp(impl->abortPoint) == 0) {
    entry(args);
    impl->running = false;
    return true;
  }
  impl->running = false;
  impl->submit();
  for (void *p : impl->live)
    freeNow(impl->device, p);
  impl->live.clear();
  return false;
}

bool CallScope::finish() {
  impl->submit();
  impl->checkValidation();
  if (Recorder *rec = impl->rec.get(); rec && rec->reports.mapped) {
    auto *r = reinterpret_cast<int32_t *>(rec->reports.mapped);
    if (r[0])
      mlx_report_out_of_bounds(r[1], r[2], r[3]);
    if (r[4])
      mlx_report_nonfinite(r[5], r[6]);
    std::memset(r, 0, kReportBytes);
  }
  return !impl->hasError;
}

bool CallScope::Impl::begin() {
  Device &d = *device;
  if (!rec) {
    rec = std::make_unique<Recorder>();
    VkCommandPoolCreateInfo poolInfo{
        VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    poolInfo.queueFamilyIndex = d.queueFamily;
    if (VkResult r =
            d.vkCreateCommandPool(d.device, &poolInfo, nullptr, &rec->pool)) {
      error(failed("vkCreateCommandPool", r));
      rec.reset();
      return false;
    }
    VkCommandBufferAllocateInfo bufferInfo{
        VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    bufferInfo.commandPool = rec->pool;
    bufferInfo.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    bufferInfo.commandBufferCount = 1;
    VkFenceCreateInfo fenceInfo{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkResult r =
        d.vkAllocateCommandBuffers(d.device, &bufferInfo, &rec->commands);
    if (r == VK_SUCCESS)
      r = d.vkCreateFence(d.device, &fenceInfo, nullptr, &rec->fence);
    if (r != VK_SUCCESS) {
      error(failed("allocating a command buffer", r));
      return false;
    }
  }
  VkCommandBufferBeginInfo beginInfo{
      VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  beginInfo.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  if (VkResult r = d.vkBeginCommandBuffer(rec->commands, &beginInfo)) {
    error(failed("vkBeginCommandBuffer", r));
    return false;
  }
  recording = true;
  dispatches = 0;
  return true;
}

VkDescriptorSet CallScope::Impl::descriptorSet(VkDescriptorSetLayout layout) {
  Device &d = *device;
  for (;; ++rec->currentPool) {
    if (rec->currentPool == rec->descriptorPools.size()) {
      VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                kSetsPerPool * program->maxBindings};
      VkDescriptorPoolCreateInfo poolInfo{
          VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
      poolInfo.maxSets = kSetsPerPool;
      poolInfo.poolSizeCount = 1;
      poolInfo.pPoolSizes = &size;
      VkDescriptorPool pool;
      if (VkResult r =
              d.vkCreateDescriptorPool(d.device, &poolInfo, nullptr, &pool)) {
        error(failed("vkCreateDescriptorPool", r));
        return VK_NULL_HANDLE;
      }
      rec->descriptorPools.push_back(pool);
    }
    VkDescriptorSetAllocateInfo setInfo{
        VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    setInfo.descriptorPool = rec->descriptorPools[rec->currentPool];
    setInfo.descriptorSetCount = 1;
    setInfo.pSetLayouts = &layout;
    VkDescriptorSet set;
    VkResult r = d.vkAllocateDescriptorSets(d.device, &setInfo, &set);
    if (r == VK_SUCCESS)
      return set;
    if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) {
      error(failed("vkAllocateDescriptorSets", r));
      return VK_NULL_HANDLE;
    }
  }
}

bool CallScope::Impl::paramSlot(const void *bits, size_t bytes,
                                VkDescriptorBufferInfo &out) {
  size_t align = (size_t)device->offsetAlignment;
  size_t slot = std::max<size_t>((bytes + align - 1) / align * align, align);
  if (slot > kArenaBytes) {
    error("a kernel's parameters take " + std::to_string(bytes) +
          " bytes, more than the runtime passes (" +
          std::to_string(kArenaBytes) + ")");
    return false;
  }
  if (rec->currentArena < rec->arenas.size() &&
      rec->arenaUsed + slot > kArenaBytes) {
    ++rec->currentArena;
    rec->arenaUsed = 0;
  }
  if (rec->currentArena == rec->arenas.size()) {
    Buffer b;
    if (std::string e = device->createBuffer(kArenaBytes, b); !e.empty()) {
      error(e);
      return false;
    }
    rec->arenas.push_back(b);
    rec->arenaUsed = 0;
  }
  Buffer &arena = rec->arenas[rec->currentArena];
  std::memcpy(arena.mapped + rec->arenaUsed, bits, bytes);
  out = {arena.buffer, rec->arenaUsed, bytes};
  rec->arenaUsed += slot;
  return true;
}

void CallScope::Impl::launch(int64_t kernel, const int64_t grid[3],
                             const int64_t *args) {
  if (hasError)
    return;
  const KernelSpec &spec = program->kernels.at(kernel);
  const Program::Impl::Pipeline &pl = program->pipelines.at(kernel);
  if (!recording && !begin())
    return;
  Device &d = *device;
  VkDescriptorSet set = descriptorSet(pl.setLayout);
  if (!set)
    return;
  std::vector<VkDescriptorBufferInfo> infos(spec.args.size());
  const void *pushed = nullptr;
  for (size_t a = 0; a < spec.args.size(); ++a) {
    int64_t bits = args[a];
    switch (spec.args[a]) {
    case ArgKind::Buffer: {
      size_t offset = 0;
      const Buffer *b = d.find(reinterpret_cast<const void *>(bits), offset);
      if (!b) {
        // Host memory handed out after a failed allocation: the error
        // that says so is already the call's.
        error("kernel '" + spec.name + "' argument " + std::to_string(a) +
              " is not in Vulkan device memory");
        return;
      }
      if (b->size > d.info.maxStorageBufferRange) {
        error("a tensor of " + std::to_string(b->size) +
              " bytes is larger than the Vulkan device's storage buffer "
              "range (" +
              std::to_string(d.info.maxStorageBufferRange) + " bytes)");
        return;
      }
      infos[a] = {b->buffer, 0, VK_WHOLE_SIZE};
      if (offset % d.offsetAlignment) {
        error("kernel '" + spec.name + "' argument " + std::to_string(a) +
              " starts at an unaligned offset");
        return;
      }
      infos[a].offset = offset;
      break;
    }
    case ArgKind::Params:
      if (!paramSlot(reinterpret_cast<const void *>(bits), spec.paramBytes,
                     infos[a]))
        return;
      break;
    case ArgKind::PushConstants:
      pushed = reinterpret_cast<const void *>(bits);
      break;
    case ArgKind::Report:
      if (!rec->reports.mapped) {
        if (std::string e = d.createBuffer(kReportBytes, rec->reports);
            !e.empty()) {
          error(e);
          return;
        }
        std::memset(rec->reports.mapped, 0, kReportBytes);
      }
      infos[a] = {rec->reports.buffer, 0, kReportBytes};
      break;
    }
  }
  std::vector<VkWriteDescriptorSet> writes;
  for (size_t a = 0; a < spec.args.size(); ++a) {
    if (spec.args[a] == ArgKind::PushConstants)
      continue;
    VkWriteDescriptorSet w{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    w.dstSet = set;
    w.dstBinding = (uint32_t)a;
    w.descriptorCount = 1;
    w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    w.pBufferInfo = &infos[a];
    writes.push_back(w);
  }
  d.vkUpdateDescriptorSets(d.device, (uint32_t)writes.size(), writes.data(), 0,
                           nullptr);
  VkCommandBuffer cmd = rec->commands;
  if (dispatches > 0) {
    // Each kernel reads what the ones before it wrote.
    VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    barrier.dstAccessMask =
        VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    d.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                           VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier,
                           0, nullptr, 0, nullptr);
  }
  d.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pl.pipeline);
  d.vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pl.layout, 0,
                            1, &set, 0, nullptr);
  if (pushed)
    d.vkCmdPushConstants(cmd, pl.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                         spec.paramBytes, pushed);
  ++dispatches;
  if (grid[0] <= 0 || grid[1] <= 0 || grid[2] <= 0)
    return;
  const auto &limit = d.info.maxWorkgroupCount;
  if (grid[0] <= limit[0] && grid[1] <= limit[1] && grid[2] <= limit[2]) {
    d.vkCmdDispatch(cmd, (uint32_t)grid[0], (uint32_t)grid[1],
                    (uint32_t)grid[2]);
    return;
  }
  // A grid larger than the device's: chunks with a base workgroup, which
  // gpu.block_id (the WorkgroupId builtin) includes.
  for (int64_t z = 0; z < grid[2]; z += limit[2])
    for (int64_t y = 0; y < grid[1]; y += limit[1])
      for (int64_t x = 0; x < grid[0]; x += limit[0])
        d.vkCmdDispatchBase(cmd, (uint32_t)x, (uint32_t)y, (uint32_t)z,
                            (uint32_t)std::min<int64_t>(limit[0], grid[0] - x),
                            (uint32_t)std::min<int64_t>(limit[1], grid[1] - y),
                            (uint32_t)std::min<int64_t>(limit[2], grid[2] - z));
}

void CallScope::Impl::submit() {
  Device &d = *device;
  if (recording) {
    recording = false;
    if (tracing())
      fprintf(stderr, "submit (%u dispatches)\n", dispatches);
    VkCommandBuffer cmd = rec->commands;
    // The host reads what the kernels wrote.
    VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_HOST_WRITE_BIT;
    d.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                           VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &barrier, 0,
                           nullptr, 0, nullptr);
    VkResult r = d.vkEndCommandBuffer(cmd);
    if (r == VK_SUCCESS) {
      VkSubmitInfo submitInfo{VK_STRUCTURE_TYPE_SUBMIT_INFO};
      submitInfo.commandBufferCount = 1;
      submitInfo.pCommandBuffers = &cmd;
      std::lock_guard<std::mutex> lock(d.queueMutex);
      r = d.vkQueueSubmit(d.queue, 1, &submitInfo, rec->fence);
    }
    if (r == VK_SUCCESS)
      r = d.vkWaitForFences(d.device, 1, &rec->fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
      error(failed("running the Vulkan kernels (vkQueueSubmit/"
                   "vkWaitForFences)",
                   r));
    d.vkResetFences(d.device, 1, &rec->fence);
    d.vkResetCommandPool(d.device, rec->pool, 0);
    for (VkDescriptorPool pool : rec->descriptorPools)
      d.vkResetDescriptorPool(d.device, pool, 0);
    rec->currentPool = 0;
    rec->currentArena = 0;
    rec->arenaUsed = 0;
  }
  for (void *p : deferredFrees)
    freeNow(&d, p);
  deferredFrees.clear();
}

void CallScope::Impl::checkValidation() {
  std::lock_guard<std::mutex> lock(validationMutex);
  if (validationMessages.size() > validationSeen)
    error("Vulkan validation: " + validationMessages[validationSeen]);
  validationSeen = validationMessages.size();
}

//===----------------------------------------------------------------------===//
// What host code calls
//===----------------------------------------------------------------------===//

/// A device buffer of `bytes`, or null with `error` set.
static void *allocate(size_t bytes, std::string &error) {
  Device *d = theDevice(&error);
  Buffer b;
  if (d)
    error = d->createBuffer(bytes, b);
  if (!error.empty())
    return nullptr;
  if (tracing())
    fprintf(stderr, "alloc %zu -> %p\n", bytes, (void *)b.mapped);
  if (currentCall)
    currentCall->live.insert(b.mapped);
  return b.mapped;
}

extern "C" void *mlx_vk_malloc(size_t bytes) {
  bool failed = false;
  {
    std::string error;
    if (void *p = allocate(bytes, error))
      return p;
    failed = true;
    if (currentCall)
      currentCall->error(error);
    else
      mlx::rt::reportCallError(error);
  }
  if (failed && currentCall && currentCall->running)
    abortCall(*currentCall);
  Device *d = theDevice();
  // (outside host code: the caller's copy of an argument)
  void *host = std::malloc(std::max<size_t>(bytes, 1));
  if (host && d) {
    std::lock_guard<std::mutex> lock(d->buffersMutex);
    d->hostFallbacks.insert(host);
  }
  return host;
}

extern "C" void *mlx_vk_aligned_alloc(size_t, size_t bytes) {
  // Buffers start at the device's memory alignment (at least 16 bytes).
  return mlx_vk_malloc(bytes);
}

extern "C" void mlx_vk_free(void *p) {
  if (!p)
    return;
  if (tracing())
    fprintf(stderr, "free %p%s\n", p,
            currentCall && currentCall->recording ? " (deferred)" : "");
  if (currentCall)
    currentCall->live.erase(p);
  Device *d = theDevice();
  if (!d) {
    std::free(p);
    return;
  }
  if (currentCall && currentCall->recording)
    currentCall->deferredFrees.push_back(p);
  else
    freeNow(d, p);
}

extern "C" void mlx_vk_launch(int64_t kernel, int64_t gx, int64_t gy,
                              int64_t gz, const int64_t *args) {
  if (!currentCall) {
    mlx::rt::reportCallError("a Vulkan kernel launched outside of a call");
    return;
  }
  const int64_t grid[3] = {gx, gy, gz};
  if (tracing())
    fprintf(stderr, "launch %ld\n", (long)kernel);
  currentCall->launch(kernel, grid, args);
  if (currentCall->hasError && currentCall->running)
    abortCall(*currentCall);
}

extern "C" void mlx_vk_sync() {
  if (currentCall && currentCall->recording)
    currentCall->submit();
}
