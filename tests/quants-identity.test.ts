// The quantizers' bytes are pinned: SHA-256 of quantize() and of dequantize() of those bytes for
// every type, on seeded inputs (tests/fixtures/quants-identity-cases.ts: Gaussian, outliers, zero
// blocks and sub-blocks, tiny and huge values, ±Inf/NaN, odd lengths and offset views for the
// float types, 32-block lengths for the legacy types).
//
// How the hashes were made: before the quantizers were optimized, src/io/quants/ as of commit 8302390
// (the code tests/quants-ref.test.ts checks against ggml's own bytes) was copied to a scratch
// directory, and a script ran each type's quantize() and dequantize() on these cases and printed
// the first 32 hex digits of the SHA-256 of each output ("quantize:dequantize" below); the same
// script gave the same hashes over 15 repeated runs (all JIT tiers). A faster quantizer must give
// the same bytes: a change here is a change of output, not of speed.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GGMLType, quantFormat, type GGMLTypeName } from '../src/io/quants/index.ts';
import { blocks32Cases, identityCases, oddLengthCases } from './fixtures/quants-identity-cases.ts';

const sha = (a: ArrayBufferView): string => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

const INPUTS: Record<string, string> = {
  gaussian: '606973cb71156120',
  outliers: 'f98859c42fe48c21',
  zeros: '6579139cc72c9d68',
  tiny: 'e7ab3bf267f0aee0',
  large: 'c7a439ad91a401aa',
  mixed: 'c565bbef9aa7f9dd',
  special: '0eaa287c382d3b94',
  'odd-1001': 'ce8fd3bdbcf86068',
  'offset-view-4093': '538cb28236212808',
  'gaussian-32x37': '50a24cb7b9f0cfd0',
};

const GOLDEN: Record<string, Record<string, string>> = {
  F32: {
    gaussian: '606973cb7115612033ac4d888b93f1f0:606973cb7115612033ac4d888b93f1f0',
    outliers: 'f98859c42fe48c21e31e97029e020014:f98859c42fe48c21e31e97029e020014',
    zeros: '6579139cc72c9d681eff6a42af13df1c:6579139cc72c9d681eff6a42af13df1c',
    tiny: 'e7ab3bf267f0aee0d381484cff59ad38:e7ab3bf267f0aee0d381484cff59ad38',
    large: 'c7a439ad91a401aa29527d3da9507722:c7a439ad91a401aa29527d3da9507722',
    mixed: 'c565bbef9aa7f9dd005dcaa671f89f8a:c565bbef9aa7f9dd005dcaa671f89f8a',
    special: '0eaa287c382d3b94a552d309e65a55b1:0eaa287c382d3b94a552d309e65a55b1',
    'odd-1001': 'ce8fd3bdbcf86068a6329c95d9ad09d2:ce8fd3bdbcf86068a6329c95d9ad09d2',
    'offset-view-4093': '538cb282362128085f62cb832d4da22d:538cb282362128085f62cb832d4da22d',
    'gaussian-32x37': '50a24cb7b9f0cfd03f1531df2fbd6ab9:50a24cb7b9f0cfd03f1531df2fbd6ab9',
  },
  F16: {
    gaussian: '502239160ed22e84a51abf959526da11:f0a1cc19fe692ea21886247ca4821b90',
    outliers: '867147744165fedc08d67a531deb405b:38e69568aad60c73267428b7edfe4a0c',
    zeros: '9039ccaacc9c29d08ebaa7113aecb6d1:47ddced7e47d381a174b50f9c41a57c1',
    tiny: 'aeb8021aa89d8075e0cf7e793e7c6efa:3f652c31d22041e1ea181fb0d105f440',
    large: '45201b99817acdb271788c392df60021:adec749df2699d7f0578f3c1e7c74573',
    mixed: 'd15e5924df6093edfa46495f53e34cb6:7088f72883d1e7d759b71fc4a78ccdb4',
    special: '9dcb4854ad70a5c66423958cd03c5ad5:3ba22b140a5383f0dc430eebe788e7e4',
    'odd-1001': 'eebfd5f84b6c397ddea0bc374149b91f:3fbe15aff372c1adc6ee171976aff8eb',
    'offset-view-4093': 'cc7b2d31b8ddcf271a6141befb4f65db:130bc4bbcce763aa9ea69baa501b5ede',
    'gaussian-32x37': 'ce90c7319b619e6a683ab9c2fb434b15:4750f87e5959cdecaf3858c6d3af4848',
  },
  BF16: {
    gaussian: '0b142d047e6d845526e23edfe29f4b36:28a132e3f9dec5bf4245edcd9fdff24b',
    outliers: 'f544f4d79278b167b8dbc645e1bc698a:82370b64091c7c5fe91367500cee7d7b',
    zeros: '568d2f1e36a692b41d745430a759061f:721b29e5e7947667e08f968c36218a70',
    tiny: '8d7e123d0b36ce62fd11c46da023ef2c:edeebff9f43219996a8535dea4a9ae9c',
    large: 'bdb7596425c4116f137e3a0dca9ec8df:eb71d3f55a5847d7223ae4d58c486e00',
    mixed: 'b63423278925d09f6eebf83d5d12dc5b:b6cc433c81186de85b298f10ccc3fd0e',
    special: '73212d7aa360258d57af766d95567a2a:3b7d616cbf23a7ce36a8a0a6174e1b77',
    'odd-1001': 'b605c56cb39e1aaad0dee37b98842072:6e3ea2906d09b67d143bc135a38e8987',
    'offset-view-4093': '82c517b92794cc9944bc9413a2166bcb:2a4b93106074759563f3dac922563a45',
    'gaussian-32x37': '7666e60c6e56ff712152de5f6d9fc736:61e7508dbf7b6abc68a34971e230c1a6',
  },
  Q8_0: {
    gaussian: 'ec41aa1201b19b093ea200d9bdbf0407:635d0d57443c368f1f15a83bb9ed9ffe',
    outliers: 'd9d3863c13042bfa891533ab559971b0:6ebc6b4680328be6ae322a3c3840982e',
    zeros: '53c3b15c89506b8646822086dba8f10e:62b4eedaf69745848275dfb12ac82315',
    tiny: 'df8028cc0c2ffb0df360b2242a67f3c5:b71b1bfed8c48d16305baabf60442fa2',
    large: 'dcd60ced1e3add2bc9c975bcf5de7283:8f7b64dfcd8a52cf2ce2402a0e3197c5',
    mixed: 'fdd88b6eb456e5a2ccc70643b53a78a7:a7db0fb866d2a0c011751c0ec12befcc',
    special: '23f4c38bc0719f2c128a9613224ee28d:715022eb48f1e6963c3b936ef3d4ccff',
    'gaussian-32x37': '0d9e86a9303b12d79d77ff2bc5816726:1ee9bf2a5b8f02918158f2c56cd75cac',
  },
  Q4_0: {
    gaussian: '3b6aecf2683990454b00466b9d6376be:f68476b1db8836b50b91b67ec72b829b',
    outliers: 'd0801a5beca8aa6eafd8081d9188f8a6:2809c6ccf9dc94602bf73dd2fc20b015',
    zeros: '91feaf2a11d43b8f92a56df2a1573d6b:1b9ad34ce247cc11c70545e7b9779de0',
    tiny: 'd1769764337ba74a67ca5d0623da8033:b5a32d20e899b202b9b8fbc4e49f2299',
    large: 'b8e79436c46b425d5733d56da3fec3b1:462642cbead8ab5dcd4a4ebea2d1f0b9',
    mixed: '8095ae09cb4e7ae5e2c9655a2b7eab3e:34833e7a8a90cd02aa3adc65aad27431',
    special: 'e81b3e25b84a7b9bf25dee4b64f21940:2b9d805e7d9eb0433273c808793b42d5',
    'gaussian-32x37': 'd2b1cdc68df089ce09e14bba3a41f214:e6547c8bf05e596334db16770dfc4f0b',
  },
  Q4_1: {
    gaussian: '271be8ddeef37cedc671a907ab9cf357:26497e8d92c7e52ed399b65694544f74',
    outliers: '1d255abdc2346d1a7a5e6294dd98535c:364dca48aff2c30979d9a2bba6957955',
    zeros: 'c08d7e3040798dd0b3180c4c840952ec:cf00de3b4703f5a551ac4ad3d6cd30d0',
    tiny: '7352c160c3f0acf647b2a18c7c41fd08:c797a6cff62b20df3616b7a5dade0b34',
    large: '97dd4154805b36875dd0f44474dfb842:4809f236c15fb4c08f7edce59274ee1c',
    mixed: 'b590920f802026d426cb441a9678de80:c0c4466b6e97401bda65dadfa16cc25e',
    special: '3e608455460b8d42b37300532fab239b:050e7c8b0b1e466063705fa4ce260610',
    'gaussian-32x37': 'f685f51ea1f49cc1cbdecc94aca1d825:4a458a9877069884d7b79785849f737d',
  },
  Q5_0: {
    gaussian: 'cbe640d76e6f5378b66e7df272a54e4c:e98814b2dfe5c4b8ab4dd04d9e1c9716',
    outliers: '097a482edc58ee867123c45d0437a9e5:d733e2f1d179bbc1b86f14ecd85edb05',
    zeros: '8dcf53076e35c13a27e5b5626a9346f9:8406eaca71c4dd8fd589b86bade0c3de',
    tiny: 'ea730593d6e77a7484c9281e59c788f8:2a00862fb83d33a8de0b8fb354e2c366',
    large: '682b07ec5711b3c8766f37e12899bbbe:be5c8ee8c97e62d5ee81c32bce09c02f',
    mixed: '2fe6d4906fc2ebadc48d00a3d1615a09:d4c32342f1b94bc309393a8d7be615ff',
    special: '65b9c7dcfe4cb6ea868732a719aa86d0:89f16e89daff79b7015b2a01c5c9226c',
    'gaussian-32x37': '7cf9f22762aef9274f0c0ed8d6e10948:677769f4e331bba8cbc6ea1fab797376',
  },
  Q5_1: {
    gaussian: 'd1d0978e363e36292898178594181c39:19759326bc7fe08a3ea7e4292a313aa8',
    outliers: 'ddf8620db32bf062f63d5a3c76277fe8:e5ec6cb5056c91ad9968a196535f4960',
    zeros: '29be35b3c522d9f86430003441a723a7:7acc2c86bada3d5e8ff45fa2f36d7e67',
    tiny: '08236cd6a1a84852dfe6ba228a31a0d9:9b6d1d3ceaf3b2a1ecb148c4119f9a6e',
    large: 'ffeead84109e857306c5d51533105acf:0d1522b07567594ae86a0fb2caaed5fc',
    mixed: 'd430a0aed99d5b3600db8491e71c1ece:68eb903a15faf84e9fe2b909cd4b604e',
    special: '7ffd3ab624b1b22236dda312c86ef80b:ac4b64d1484be7ad970d9b5339b91671',
    'gaussian-32x37': '1287e1f67b70af0cecd2669cb0258ab2:a4ac25585c8efe7fe0768d41464a4bad',
  },
  Q2_K: {
    gaussian: '2f7bde7f625b65548d80ed728fb695df:9a211bb145afd4e5409c77b048c0e730',
    outliers: '4cd1af831b8fc3ede8cbb03de9f8804a:e504cdb256ec7edd650dd4bed5504939',
    zeros: 'e2adc5616a9b815a229f70052c1318dc:0cb1771e4b1a58923b6fceeab0c8d82d',
    tiny: 'a947cefdf68d9ee7fcf0aeccba1941fe:dbe28f6d50422d33e80f5b9df149f070',
    large: 'b300924a68cb382ead6dbf782dc1a3ae:98aef71bb536180dff8561dc2384eaf9',
    mixed: '1ec9c6d9cb0cd676267b2257607bc5c9:663b7fff28931de63143c0fabb458d99',
    special: 'e31f97c0fe88f03a4b68dc9e3f8678f6:7f3546b1ab16b381664e453d8b12dbde',
  },
  Q3_K: {
    gaussian: '4f6237f9b03efd8672cd87158d7a7a02:789739f0e98b67fcdad43c16b3d45091',
    outliers: 'c8b745af068e637c8e2c0c6d9cb367e5:a2acf8fe8085b422964ab3387dcccae5',
    zeros: '6b6efe4a11abfc98238411a78365d8a3:b1442d16d4bcd4fcacf0ed511fe6d955',
    tiny: 'c556eea36d01da15fdd85f9b08ed70bb:ebcd4e09b24220fc0e52334511f63b3a',
    large: 'c5c3d821d0b0ab8cdbdd509fb078e217:2756333a1d023efc28f98ce86e80e7b1',
    mixed: '0392f74e7f4ce777fae64cbdb6bbec83:1c1deba7199333f2dc8b03e7dfa253c7',
    special: 'fa964d50ef68d6b8c803ef4174e741d3:b190dd4737fb3c4bf1315fc246e17af9',
  },
  Q4_K: {
    gaussian: 'e2b82996142dfcdcb40b0ca7f90545ca:ab596c512077cf9ad96a69c54abd8e0b',
    outliers: '3c7e65e2ce6819c67cbffbd4dd29a91d:393b0ddaa2dad69274284227f7d8ef7e',
    zeros: 'ae0c2cb0c6ed135830c2cdb48ccccb2e:499ad0e49dcdff0b579a550ba1feed96',
    tiny: '2942f9167bee9715d74dcfdc44abc61d:f620a3ae83f47bbc9372b24bfcc14393',
    large: '50556cba7b99958ce2de7485137ee93f:afd7d0cf4e6ef4a34b5155bf59eaa21b',
    mixed: 'edf6fad06281f8bee1228b42e3576344:b244bfe069c77f8a88312ec5df0b559b',
    special: 'd2c4b496070efa78e0fa08bd799bda32:d3006c450bba556fb7c1c57112a0a583',
  },
  Q5_K: {
    gaussian: '500b431afcc49b7a3c903d6ff1bc92ac:ffadf309db22631ac8930a922947fa1d',
    outliers: '808f4e4e74044ff107a9a3de7c8898a4:eeaa34b3af685fab904dd3db02f5de2d',
    zeros: '73566fea322756333e6c8ebd83d9c538:41777362a8f34e75a09402d4e28f3d12',
    tiny: '74a1791f9a6706afe99d8cb66b5bf1f1:4512ab092c23d717df2be842b154445d',
    large: '00aa0ca0afa9264403fedf6b67feb14f:e6800d83e21da9b6511f66de059ddb49',
    mixed: 'e90e549d13c377980a4b2e147514e009:db37f13e1e4a58e8985299a2231e6f8a',
    special: '2eafdcb095ee46329f610f8e18d3fd6d:47adb5896ea1b206e293b29462cc843b',
  },
  Q6_K: {
    gaussian: '26a812a881cc710b58914dcdc6773f1e:e7eb657ea3d06d930340021a7f97dd33',
    outliers: '080d1b2d9b7260ff8c84563f0abb2fac:05a5b8c4b2ba6b38c5fd469e0e140e34',
    zeros: 'd282a731b93c014ae260111de10c7761:76353c5f9a008d73b1b1280232490792',
    tiny: '088e9f400b146ab7001909692eb9b477:8e6a11d619f708db1d260e286e934ddc',
    large: '97e826c553c2b5c1bc25c71ecc684c7c:facffc27af40caaa117fa5055066c6af',
    mixed: '1d25cd6efeaf3fed7a527d57bda3f670:d6cf33eb65c45fa9f096862e621fcd13',
    special: 'd22ec044f7980bac0aacbf8eb0081071:f66dfb14daddc6c96845c4031b9823ba',
  },
};

const CASES = [...identityCases(), ...oddLengthCases(), ...blocks32Cases()];

describe('quantizer output identity (golden SHA-256, quantize:dequantize)', () => {
  it('the seeded inputs are the ones the hashes were made from', () => {
    for (const c of CASES) expect(`${c.name} ${sha(c.values).slice(0, 16)}`).toBe(`${c.name} ${INPUTS[c.name]}`);
  });
  for (const [type, golden] of Object.entries(GOLDEN)) {
    it(type, () => {
      const f = quantFormat(GGMLType[type as GGMLTypeName]);
      for (const c of CASES) {
        if (c.values.length % f.blockSize !== 0) {
          expect(golden[c.name]).toBeUndefined();
          expect(() => f.quantize(c.values)).toThrow(RangeError);
          continue;
        }
        const q = f.quantize(c.values);
        const y = f.dequantize(q);
        expect(`${c.name} ${sha(q).slice(0, 32)}:${sha(y).slice(0, 32)}`).toBe(`${c.name} ${golden[c.name]}`);
        // Into a given (dirty) buffer: the same bytes.
        const dst = new Uint8Array(q.length).fill(0xa5);
        expect(f.quantize(c.values, dst)).toBe(dst);
        expect(sha(dst)).toBe(sha(q));
      }
    });
  }
});
