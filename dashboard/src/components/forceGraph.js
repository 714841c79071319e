// A window graph drawn with D3's force layout (Plot has no force mark): nodes are the CAN IDs of the
// window, edges the consecutive-frame transitions; ``color`` fills the nodes (a colour or a function of the
// node). The layout runs to rest before drawing, so the same
// graph always looks the same (and screenshots compare).
import * as d3 from "npm:d3";

export function forceGraph({nodes, links, width, height = 520, color}) {
  const simulation = d3.forceSimulation(nodes)
    .force("link", d3.forceLink(links).id((d) => d.id).distance(60))
    .force("charge", d3.forceManyBody().strength(-160))
    .force("center", d3.forceCenter(width / 2, height / 2))
    .force("collide", d3.forceCollide(14))
    .stop();
  for (let i = 0; i < 300; ++i) simulation.tick();
  const inside = (v, max) => Math.max(16, Math.min(max - 16, v));
  for (const n of nodes) [n.x, n.y] = [inside(n.x, width), inside(n.y, height)];

  const svg = d3.create("svg").attr("width", width).attr("height", height).attr("viewBox", [0, 0, width, height])
    .attr("style", "max-width: 100%; height: auto;");
  svg.append("defs").append("marker").attr("id", "arrow").attr("viewBox", "0 -4 8 8").attr("refX", 16).attr("markerWidth", 6)
    .attr("markerHeight", 6).attr("orient", "auto").append("path").attr("d", "M0,-4L8,0L0,4").attr("fill", "#888");
  svg.append("g").attr("aria-label", "edges").attr("stroke", "#888").attr("stroke-opacity", 0.6)
    .selectAll("line").data(links).join("line")
    .attr("x1", (d) => d.source.x).attr("y1", (d) => d.source.y).attr("x2", (d) => d.target.x).attr("y2", (d) => d.target.y)
    .attr("stroke-width", (d) => 0.5 + 3 * d.weight).attr("marker-end", "url(#arrow)");
  const node = svg.append("g").attr("aria-label", "nodes").selectAll("g").data(nodes).join("g")
    .attr("transform", (d) => `translate(${d.x},${d.y})`);
  const radius = (d) => 5 + Math.sqrt(d.degree) * 2;
  node.append("circle").attr("r", radius).attr("fill", color).attr("stroke", "#111");
  node.append("text").text((d) => d.id).attr("dy", (d) => -radius(d) - 4).attr("text-anchor", "middle").attr("fill", "currentColor")
    .attr("font-size", 10);
  node.append("title").text((d) => `CAN ID ${d.id}: ${d.degree} edges${d.attack ? "; carried attack frames" : ""}`);
  return svg.node();
}
