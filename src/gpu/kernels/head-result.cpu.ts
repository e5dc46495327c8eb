/** CPU references for `head-result.ts`. */
export function headResultCpu(result: Float32Array, z: Float32Array, W_O: Float32Array, BT: number, H: number, dh: number, C: number): void {
  for (let bt = 0; bt < BT; bt++)
    for (let h = 0; h < H; h++)
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let d = 0; d < dh; d++) acc += z[(bt * H + h) * dh + d] * W_O[(h * dh + d) * C + c];
        result[(bt * H + h) * C + c] = acc;
      }
}

export function sumHeadsCpu(out: Float32Array, result: Float32Array, b_O: Float32Array, BT: number, H: number, C: number): void {
  for (let bt = 0; bt < BT; bt++)
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let h = 0; h < H; h++) acc += result[(bt * H + h) * C + c];
      out[bt * C + c] = acc + b_O[c];
    }
}
