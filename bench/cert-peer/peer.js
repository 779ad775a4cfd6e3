// peer.js: the certificate of bench/cert_render.c built the way an
// integrator would otherwise build it in Node: pdf-lib with
// @pdf-lib/fontkit (fonts embedded as subsets) and qrcode. A4 landscape,
// four text elements (two fonts), a QR code of the verification URL, one
// signature image with the signatory's name and designation, one PDF per
// certificate, kept in memory (bytes counted, not written).
//
// Usage: node peer.js <certificates> [processes] [signature.png]
// Runs <processes> (default: the number of CPUs) workers, each making its
// share; prints one JSON line: certificates, processes, seconds (wall clock,
// from the first worker's start to the last one's end, fonts loaded before),
// per_s, pdf_bytes (of certificate 0).
'use strict';
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const { PDFDocument, rgb } = require('pdf-lib');
const fontkit = require('@pdf-lib/fontkit');
const QRCode = require('qrcode');

const FONTS = '/usr/share/fonts/truetype/noto/';

async function certificate(i, fonts, sigPng) {
  const name = 'Recipient Número ' + i;
  const ref = 'CERT-' + String(i).padStart(8, '0');
  const url = 'https://certs.example.org/verify/' + ref;
  const doc = await PDFDocument.create();
  doc.registerFontkit(fontkit);
  doc.setTitle('Certificate ' + ref);
  doc.setCreator('batchd bench peer');
  const d = new Date(Date.UTC(2025, 1, 15));
  doc.setCreationDate(d);
  doc.setModificationDate(d);
  const sans = await doc.embedFont(fonts.sans, { subset: true });
  const sansBold = await doc.embedFont(fonts.sansBold, { subset: true });
  const serifBold = await doc.embedFont(fonts.serifBold, { subset: true });
  const page = doc.addPage([842, 595]);
  const H = 595;
  const center = (text, font, size, y) => {
    const w = font.widthOfTextAtSize(text, size);
    page.drawText(text, { x: 421 - w / 2, y: H - y - size, size, font, color: rgb(0, 0, 0) });
  };
  center('Université de Genève', sans, 20, 60);
  center('Certificate for ' + name, serifBold, 30, 120);
  page.drawText('Course: Análisis Matemático', { x: 60, y: H - 220 - 16, size: 16, font: sans });
  const issued = 'Issued 15-02-2025';
  page.drawText(issued, { x: 782 - sans.widthOfTextAtSize(issued, 14), y: H - 260 - 14, size: 14, font: sans });
  // the QR as an image, as integrators embed what qrcode gives them
  const qr = await QRCode.toBuffer(url, { errorCorrectionLevel: 'M', margin: 4, width: 240 });
  const qrImg = await doc.embedPng(qr);
  page.drawImage(qrImg, { x: 700, y: H - 440 - 120, width: 120, height: 120 });
  const sig = await doc.embedPng(sigPng);
  const k = Math.min(160 / sig.width, 60 / sig.height);
  page.drawImage(sig, { x: 100 + (160 - sig.width * k) / 2, y: H - 430 - 60 + (60 - sig.height * k) / 2,
                        width: sig.width * k, height: sig.height * k });
  const sc = (text, font, size, y) => {
    const w = font.widthOfTextAtSize(text, size);
    page.drawText(text, { x: 180 - w / 2, y: H - y - size, size, font });
  };
  sc('Ana Núñez', sansBold, 12, 493);
  sc('Directora', sans, 10.2, 509);
  return doc.save();
}

async function worker(from, to, sigPath) {
  const fonts = {
    sans: fs.readFileSync(FONTS + 'NotoSans-Regular.ttf'),
    sansBold: fs.readFileSync(FONTS + 'NotoSans-Bold.ttf'),
    serifBold: fs.readFileSync(FONTS + 'NotoSerif-Bold.ttf'),
  };
  const sigPng = sigPath ? fs.readFileSync(sigPath)
                         : await QRCode.toBuffer('signature', { margin: 1, width: 240 }); // any small PNG
  await certificate(0, fonts, sigPng); // warm: fonts parsed, code compiled
  process.send({ ready: true });
  await new Promise((res) => process.once('message', res));
  let bytes = 0;
  for (let i = from; i < to; i++) {
    const pdf = await certificate(i, fonts, sigPng);
    if (i === from) bytes = pdf.length;
  }
  process.send({ done: to - from, bytes });
}

if (process.argv[2] === '--worker') {
  worker(+process.argv[3], +process.argv[4], process.argv[5]).then(() => process.exit(0));
} else {
  const count = +(process.argv[2] || 200);
  const procs = +(process.argv[3] || os.cpus().length);
  const sig = process.argv[4] || '';
  const kids = [];
  let ready = 0, finished = 0, total = 0, bytes = 0, t0 = 0;
  for (let p = 0; p < procs; p++) {
    const from = Math.floor((count * p) / procs), to = Math.floor((count * (p + 1)) / procs);
    const k = cp.fork(__filename, ['--worker', String(from), String(to), sig]);
    kids.push(k);
    k.on('message', (m) => {
      if (m.ready && ++ready === procs) {
        t0 = process.hrtime.bigint();
        kids.forEach((c) => c.send({ go: true }));
      }
      if (m.done !== undefined) {
        total += m.done;
        if (m.bytes) bytes = bytes || m.bytes;
        if (++finished === procs) {
          const s = Number(process.hrtime.bigint() - t0) / 1e9;
          console.log(JSON.stringify({ certificates: total, processes: procs, seconds: s, per_s: total / s,
                                       pdf_bytes: bytes }));
        }
      }
    });
  }
}
