// One screen-aligned rectangle in pixel coordinates, drawn as a 4-vertex triangle strip
// with no vertex buffer. Pixel rows map straight to framebuffer rows (row 0 = first image
// row), so no pass ever flips the picture.
uniform vec4 u_rect;    // x, y, width, height in pixels of the target
uniform vec2 u_target;  // target width, height in pixels

void main() {
    vec2 corner = vec2(float(gl_VertexID & 1), float((gl_VertexID >> 1) & 1));
    vec2 pixel = u_rect.xy + corner * u_rect.zw;
    gl_Position = vec4(pixel / u_target * 2.0 - 1.0, 0.0, 1.0);
}
