// KD transfer: per model family and test scenario, a student's F1 against its teacher's (rows of the
// kd_transfer view, kdgat/results/views.py). On the diagonal the student matches its teacher.
import {FAMILY_COLORS, choice, unique} from "./common.js";

const STUDENTS = {"distilled (small_kd)": "f1_small_kd", "trained alone (small)": "f1_small"};

export const figure = {
  id: "kd-transfer",
  table: "kd_transfer",
  title: "KD transfer: student vs teacher F1",
  controls(rows) {
    const students = Object.keys(STUDENTS);
    return [
      choice(rows, "dataset", "Dataset", "synth"),
      {name: "student", label: "Student", type: "select", options: students, value: students[0]}
    ];
  },
  render(Plot, rows, {dataset, student = Object.keys(STUDENTS)[0], width = 640}) {
    const y = STUDENTS[student];
    const points = rows.filter((d) => d.dataset === dataset && d.f1_large != null && d[y] != null);
    const scenarios = unique(rows.filter((d) => d.dataset === dataset).map((d) => d.scenario));
    return Plot.plot({
      width: Math.min(width, 720), height: Math.min(width, 720) * 0.8, grid: true, inset: 10,
      x: {domain: [0, 1], label: "teacher F1 (large)"},
      y: {domain: [0, 1], label: `student F1, ${student}`},
      color: {legend: true, label: "family", ...FAMILY_COLORS},
      symbol: {legend: true, label: "scenario", domain: scenarios},
      marks: [
        Plot.line([[0, 0], [1, 1]], {stroke: "currentColor", strokeOpacity: 0.3, strokeDasharray: "4,4"}),
        Plot.dot(points, {
          x: "f1_large", y, stroke: "family", symbol: "scenario", r: 6, strokeWidth: 2, tip: true,
          channels: {
            compression: (d) => (d.compression == null ? "—" : `${Number(d.compression).toFixed(1)}×`),
            "KD gain": (d) => (d.kd_gain == null ? "—" : Number(d.kd_gain).toFixed(3))
          }
        })
      ]
    });
  }
};
