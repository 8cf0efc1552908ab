// Every setting of the planning panel: the settings-file field it edits, its CLI flag, its DeepSpeed key and what it does.
// The tooltip of each control is built from these, so the page, the CLI and ds_config.json use one vocabulary.
'use strict';
const TIERS = ['none', 'cpu', 'nvme'];
export const GROUPS = [
  { title: 'DeepSpeed ZeRO', fields: [
    { key: 'zero_stage', label: 'ZeRO stage', type: 'select', options: ['none', 'zero1', 'zero2', 'zero3', 'infinity'], flag: '--zero-stage', ds: 'zero_optimization.stage',
      help: 'How model states are partitioned across GPUs: zero1 optimizer states, zero2 also gradients, zero3 also parameters; infinity is ZeRO-3 with offload to CPU RAM and NVMe.' },
    { key: 'param_offload', label: 'Offload parameters', type: 'select', options: TIERS, flag: '--offload-params', ds: 'zero_optimization.offload_param.device',
      help: 'Where parameters live between uses: on the GPU (none), in CPU RAM or on NVMe. Needs ZeRO-3 or infinity.' },
    { key: 'optimizer_offload', label: 'Offload optimizer', type: 'select', options: TIERS, flag: '--offload-optimizer', ds: 'zero_optimization.offload_optimizer.device',
      help: 'Where the fp32 master weights and Adam moments live; off the GPU, the CPU runs the optimizer step.' },
    { key: 'gradient_offload', label: 'Offload gradients', type: 'select', options: ['', ...TIERS], optionLabels: { '': 'with the optimizer' }, flag: '--offload-gradients', ds: '(none: DeepSpeed keeps gradients with the optimizer)',
      help: 'Where fp32 gradient partitions live; by default with the optimizer, as DeepSpeed does.' },
    { key: 'nvme_path', label: 'NVMe path', type: 'text', flag: '--nvme-offload-path', ds: 'zero_optimization.offload_param.nvme_path / offload_optimizer.nvme_path',
      help: 'Folder for the swap files, on the fast NVMe drive. The server accepts only folders inside its --nvme-root folders; "Check" runs aios check-nvme on it.' },
    { key: 'pin_memory', label: 'Pin memory', type: 'checkbox', flag: '--pin-memory / --no-pin-memory', ds: 'zero_optimization.offload_param.pin_memory / offload_optimizer.pin_memory',
      help: 'Page-lock offloaded CPU tensors: faster copies to the GPU, but the pages cannot be swapped out (NVMe swap buffers are pinned either way).' },
  ] },
  { title: 'Swap buffers', fields: [
    { key: 'buffer_count', label: 'Parameter buffers', type: 'number', min: 1, flag: '--buffer-count', ds: 'zero_optimization.offload_param.buffer_count',
      help: 'Parameter swap buffers per GPU process (pinned host memory) for parameters on NVMe.' },
    { key: 'buffer_size', label: 'Buffer size (elements)', type: 'number', min: 1, flag: '--buffer-size', ds: 'zero_optimization.offload_param.buffer_size',
      help: 'Elements per parameter swap buffer; must hold the largest tensor.' },
    { key: 'max_in_cpu', label: 'Max in CPU (elements)', type: 'number', min: 0, flag: '--max-in-cpu', ds: 'zero_optimization.offload_param.max_in_cpu',
      help: 'Parameter elements kept in CPU RAM when parameters go to NVMe.' },
    { key: 'optimizer_buffer_count', label: 'Optimizer buffers', type: 'number', min: 1, flag: '--optimizer-buffer-count', ds: 'zero_optimization.offload_optimizer.buffer_count',
      help: 'Optimizer swap buffers per GPU process for optimizer states on NVMe.' },
    { key: 'sub_group_size', label: 'Sub-group size (elements)', type: 'number', min: 1, flag: '--sub-group-size', ds: 'zero_optimization.sub_group_size',
      help: 'Optimizer state updated (and swapped) at a time; smaller needs less pinned memory, more I/O requests.' },
    { key: 'pipeline_read', label: 'Pipeline read', type: 'checkbox', flag: '--pipeline-read', ds: 'zero_optimization.offload_optimizer.pipeline_read',
      help: 'Read the next optimizer sub-group from NVMe while this one updates.' },
    { key: 'pipeline_write', label: 'Pipeline write', type: 'checkbox', flag: '--pipeline-write', ds: 'zero_optimization.offload_optimizer.pipeline_write',
      help: 'Write a sub-group back to NVMe while the next one updates.' },
    { key: 'prefetch_depth', label: 'Prefetch depth (layers)', type: 'number', min: 0, flag: '--prefetch-depth', ds: 'zero_optimization.stage3_prefetch_bucket_size (0 when depth is 0, else the prefetch bucket size setting or DeepSpeed’s 5e7)',
      help: 'Layers whose parameters the bundled engine fetches ahead of the one computing; for DeepSpeed, 0 turns prefetching off.' },
  ] },
  { title: 'Asynchronous I/O', fields: [
    { key: 'aio.block_size', label: 'AIO block size (bytes)', type: 'number', min: 4096, step: 4096, flag: '--aio-block-size', ds: 'aio.block_size',
      help: 'Bytes per I/O request; a multiple of 4096 for O_DIRECT.' },
    { key: 'aio.queue_depth', label: 'AIO queue depth', type: 'number', min: 1, flag: '--aio-queue-depth', ds: 'aio.queue_depth',
      help: 'Requests in flight per I/O thread.' },
    { key: 'aio.intra_op_parallelism', label: 'AIO threads', type: 'number', min: 1, flag: '--aio-threads', ds: 'aio.intra_op_parallelism',
      help: 'Threads that each take a slice of one read or write.' },
    { key: 'aio.single_submit', label: 'Single submit', type: 'checkbox', flag: '(settings file only)', ds: 'aio.single_submit',
      help: 'Submit requests one at a time instead of in batches.' },
    { key: 'aio.overlap_events', label: 'Overlap events', type: 'checkbox', flag: '(settings file only)', ds: 'aio.overlap_events',
      help: 'Submit new requests while completions of earlier ones are reaped.' },
  ] },
  { title: 'Batch and precision', fields: [
    { key: 'micro_batch', label: 'Micro-batch', type: 'number', min: 1, flag: '--micro-batch', ds: 'train_micro_batch_size_per_gpu',
      help: 'Sequences per GPU per micro-step; activations grow with it.' },
    { key: 'seq_len', label: 'Sequence length', type: 'number', min: 1, flag: '--seq-len', ds: '(none: the data loader\'s)',
      help: 'Tokens per sequence.' },
    { key: 'grad_accumulation', label: 'Gradient accumulation', type: 'number', min: 1, flag: '--grad-accumulation', ds: 'gradient_accumulation_steps',
      help: 'Micro-batches per optimizer step.' },
    { key: 'precision', label: 'Precision', type: 'select', options: ['bf16', 'fp16', 'fp32'], flag: '--precision', ds: 'bf16.enabled / fp16.enabled',
      help: 'Training precision: mixed bf16 or fp16 compute with fp32 master weights, or plain fp32.' },
    { key: 'activation_checkpointing', label: 'Activation checkpointing', type: 'checkbox', flag: '--grad-checkpointing', ds: 'activation_checkpointing (with the model\'s checkpoint calls)',
      help: 'Keep only layer inputs and recompute activations in backward: less GPU memory, about a third more compute.' },
    { key: 'gpus_per_node', label: 'GPUs per node', type: 'number', min: 1, nullable: true, flag: '--gpus', ds: 'launcher --num_gpus (train_batch_size follows)',
      help: 'GPUs used per node; empty uses all of the profile\'s.' },
    { key: 'nodes', label: 'Nodes', type: 'number', min: 1, nullable: true, flag: '--nodes', ds: 'launcher --num_nodes',
      help: 'Nodes used; empty uses the profile\'s.' },
    { key: 'schedule', label: 'Step schedule', type: 'select', options: ['deep_speed', 'overlapped'], optionLabels: { deep_speed: 'deepspeed' }, flag: '--schedule', ds: '(none: deepspeed is DeepSpeed\'s own order)',
      help: 'deepspeed: the optimizer runs after backward; overlapped: the aios engine updates each layer during backward (needs the optimizer offloaded).' },
  ] },
];

/** The tooltip text of a field: what it does, its DeepSpeed key and its CLI flag. */
export function tooltip(f) {
  return `${f.help}\nDeepSpeed: ${f.ds}\nCLI: ${f.flag}`;
}

/** Reads a dotted key ("aio.block_size") of a settings object. */
export function get(settings, key) {
  return key.split('.').reduce((o, k) => (o == null ? undefined : o[k]), settings);
}

/** Sets a dotted key of a settings object (creating the section), deleting it for null. */
export function set(settings, key, value) {
  const parts = key.split('.');
  let o = settings;
  for (const p of parts.slice(0, -1)) o = o[p] ??= {};
  if (value === null || value === undefined) delete o[parts.at(-1)];
  else o[parts.at(-1)] = value;
}

/** The field a CLI flag sets, with the value a suggestion's flag gives it ("--grad-checkpointing" → true). */
export function fromFlag(flag, value) {
  const booleans = { '--grad-checkpointing': ['activation_checkpointing', true], '--no-pin-memory': ['pin_memory', false], '--pin-memory': ['pin_memory', true],
    '--pipeline-read': ['pipeline_read', true], '--pipeline-write': ['pipeline_write', true], '--nvme-offload-gradients': ['gradient_offload', 'nvme'] };
  if (booleans[flag]) return { key: booleans[flag][0], value: booleans[flag][1], takesValue: false };
  for (const g of GROUPS) for (const f of g.fields) {
    if (f.flag.split(' / ')[0] !== flag) continue;
    let v = value;
    if (f.type === 'number') v = Number(value);
    if (f.key === 'schedule' && v === 'deepspeed') v = 'deep_speed';
    return { key: f.key, value: v, takesValue: true };
  }
  return null;
}
