// cluster-key-slot ships no types: CRC16 of a key (or of its {hash tag}) modulo 16384.
declare module 'cluster-key-slot' {
  function calculateSlot(key: string | Buffer): number;
  export default calculateSlot;
}
