#!/usr/bin/env node
// Reference outputs of the ORIGINAL face-api.js expression net, for tests/test_faceapi.py.
//
// Not run by CI or by the tests: it is the method that made tests/data/faceapi/reference.json.
// To re-run it (the npm registry is the only thing it needs; nothing goes into the repository):
//
//   d=$(mktemp -d) && (cd "$d" && npm init -y >/dev/null && npm install --ignore-scripts \
//       @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0)
//   node scripts/faceapi_reference.js "$d/node_modules" > tests/data/faceapi/reference.json
//   node scripts/faceapi_reference.js "$d/node_modules" --raw48 IN.u8 OUT.f32   (see raw48 below)
//
// It loads dist/face-api.node-wasm.js (pure-JS tfjs, no native tfjs-node), selects tfjs's
// 'cpu' backend (float32 JavaScript kernels), loads model/face_expression_model* from the
// installed package with faceExpressionNet.loadFromDisk, and feeds each synthetic image as a
// Tensor3D through faceExpressionNet.forward (face-api's own padToSquare + resizeBilinear to
// 112 + mean-RGB normalisation; no face detection) and faceFeatureExtractor.forward (the
// pooled 256-d features). The images are integer formulas of (y, x, channel) that
// tests/test_faceapi.py regenerates bit for bit (checked there by their byte sums).
'use strict';

const path = require('path');
const { createRequire } = require('module');

const modules = path.resolve(process.argv[2] || 'node_modules');
const req = createRequire(path.join(modules, 'noop.js'));
const faceapi = req('@vladmandic/face-api/dist/face-api.node-wasm.js');
const tf = faceapi.tf;

// Integer hash of a pixel index (32-bit, wraps like numpy uint32 arithmetic).
function hash(i, seed) {
  let h = (i + Math.imul(seed, 1000003)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// Value of channel c at (y, x) for one image spec; all integer arithmetic, in [0, 255].
function pixel(spec, y, x, c) {
  const { kind, h, w, seed } = spec;
  if (kind === 'hash') return hash((y * w + x) * 3 + c, seed) >>> 24;
  if (kind === 'gradient') {
    if (c === 0) return Math.floor((255 * x) / (w - 1));
    if (c === 1) return Math.floor((255 * y) / (h - 1));
    return Math.floor((255 * (x + y)) / (w + h - 2));
  }
  if (kind === 'rings' || kind === 'rings_gray') {
    const cc = kind === 'rings_gray' ? 0 : c;
    const dy = y - Math.floor(h / 2) + seed;
    const dx = x - Math.floor(w / 2) - seed;
    return Math.floor((dx * dx + 2 * dy * dy + 37 * cc * seed) / 8) % 256;
  }
  throw new Error(`unknown kind ${kind}`);
}

function image(spec) {
  const data = new Float32Array(spec.h * spec.w * 3);
  let sum = 0;
  for (let y = 0; y < spec.h; y++) {
    for (let x = 0; x < spec.w; x++) {
      for (let c = 0; c < 3; c++) {
        const v = pixel(spec, y, x, c);
        data[(y * spec.w + x) * 3 + c] = v;
        sum += v;
      }
    }
  }
  return { tensor: tf.tensor3d(data, [spec.h, spec.w, 3], 'float32'), sum };
}

const SPECS = [
  { name: 'hash112', kind: 'hash', h: 112, w: 112, seed: 1 },
  { name: 'rings112', kind: 'rings', h: 112, w: 112, seed: 3 },
  { name: 'gradient112', kind: 'gradient', h: 112, w: 112, seed: 0 },
  { name: 'rings_gray48', kind: 'rings_gray', h: 48, w: 48, seed: 2 },
  { name: 'hash60x90', kind: 'hash', h: 60, w: 90, seed: 7 },
  { name: 'gradient150x131', kind: 'gradient', h: 150, w: 131, seed: 0 },
];

const round = (a) => Array.from(a, (v) => Number(v.toPrecision(9)));

// --raw48 IN OUT: probabilities (float32, N x 7) of N 48x48 grey images (raw uint8, N x 48 x 48),
// each replicated to RGB and fed like the synthetic cases (bench/bench_face_zeroshot.py --dump-raw
// writes IN from CK+48 outside the repository; its --js-probs reads OUT). About 0.6 s per image.
async function raw48(net, inFile, outFile) {
  const fs = require('fs');
  const buf = fs.readFileSync(inFile);
  const n = buf.length / (48 * 48);
  const out = new Float32Array(n * 7);
  for (let i = 0; i < n; i++) {
    const g = tf.tensor3d(Float32Array.from(buf.subarray(i * 2304, (i + 1) * 2304)), [48, 48, 1]);
    const rgb = tf.tile(g, [1, 1, 3]);
    const p = await net.forward(rgb);
    out.set(p.dataSync(), i * 7);
    tf.dispose([g, rgb, p]);
  }
  fs.writeFileSync(outFile, Buffer.from(out.buffer));
  console.error(`${n} images -> ${outFile}`);
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const dir = path.join(modules, '@vladmandic', 'face-api', 'model');
  await faceapi.nets.faceExpressionNet.loadFromDisk(dir);
  const net = faceapi.nets.faceExpressionNet;
  if (process.argv[3] === '--raw48') return raw48(net, process.argv[4], process.argv[5]);
  const cases = [];
  for (const spec of SPECS) {
    const { tensor, sum } = image(spec);
    const probs = await net.forward(tensor); // (1, 7) softmax
    const feats = await net.faceFeatureExtractor.forward(tensor); // (1, 1, 1, 256)
    cases.push({ ...spec, pixel_sum: sum, probabilities: round(probs.dataSync()), features: round(feats.dataSync()) });
    tf.dispose([tensor, probs, feats]);
  }
  const out = {
    generator: 'scripts/faceapi_reference.js',
    face_api: faceapi.version,
    tfjs: tf.version_core,
    backend: tf.getBackend(),
    classes: ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'],
    cases,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((e) => { console.error(e); process.exit(1); });
