package org.polarspark.polar;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/**
 * Draws the accuracy report's PNG (perplexity and MC accuracy against head density, one row per
 * model) from {@code polar-accuracy-<date>.json} with JFreeChart (a test-scope dependency).
 *
 * <pre>
 * java -Djava.awt.headless=true -cp <test classpath> org.polarspark.polar.PolarAccuracyPlot \
 *     bench/results/polar-accuracy-DATE.json bench/results/polar-accuracy-DATE.png
 * </pre>
 */
public final class PolarAccuracyPlot {
    private PolarAccuracyPlot() {
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("java.awt.headless", "true");
        JsonNode root = new ObjectMapper().readTree(Path.of(args[0]).toFile());
        List<JFreeChart> charts = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.get("models").fields();
             it.hasNext(); ) {
            Map.Entry<String, JsonNode> m = it.next();
            String name = m.getKey();
            JsonNode rows = m.getValue().get("rows");
            double densePpl = 0;
            double denseAcc = 0;
            double denseNorm = 0;
            XYSeriesCollection ppl = new XYSeriesCollection();
            XYSeriesCollection acc = new XYSeriesCollection();
            String[][] variants = {{"false", "false", "heads only, decode only"},
                {"true", "false", "heads + MLP, decode only"},
                {"false", "true", "heads only, every token"},
                {"true", "true", "heads + MLP, every token"}};
            for (JsonNode r : rows) {
                if (r.get("config").asText().equals("dense")) {
                    densePpl = r.get("ppl").asDouble();
                    denseAcc = r.get("acc").asDouble();
                    denseNorm = r.get("acc_norm").asDouble();
                }
            }
            for (String[] v : variants) {
                XYSeries p = new XYSeries("ppl, " + v[2]);
                XYSeries a = new XYSeries("acc, " + v[2]);
                XYSeries n = new XYSeries("acc_norm, " + v[2]);
                for (JsonNode r : rows) {
                    if (r.get("config").asText().equals("polar")
                            && r.get("mlp").asText().equals(v[0])
                            && r.get("every_token").asText().equals(v[1])) {
                        double d = r.get("density").asDouble();
                        p.add(d, r.get("ppl").asDouble());
                        a.add(d, r.get("acc").asDouble());
                        n.add(d, r.get("acc_norm").asDouble());
                    }
                }
                if (p.getItemCount() > 0) {
                    ppl.addSeries(p);
                    acc.addSeries(a);
                    acc.addSeries(n);
                }
            }
            XYSeries dp = new XYSeries("dense ppl");
            XYSeries da = new XYSeries("dense acc");
            XYSeries dn = new XYSeries("dense acc_norm");
            XYSeries lim = new XYSeries("dense ppl + 2%");
            for (double d : new double[] {0.25, 1.0}) {
                dp.add(d, densePpl);
                lim.add(d, densePpl * 1.02);
                da.add(d, denseAcc);
                dn.add(d, denseNorm);
            }
            ppl.addSeries(dp);
            ppl.addSeries(lim);
            acc.addSeries(da);
            acc.addSeries(dn);
            charts.add(chart(name + ": test perplexity vs head density", "perplexity", ppl));
            charts.add(chart(name + ": MC accuracy vs head density", "accuracy", acc));
        }
        int w = 720;
        int h = 480;
        int rowsN = charts.size() / 2;
        BufferedImage img = new BufferedImage(2 * w, rowsN * h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        for (int i = 0; i < charts.size(); i++) {
            charts.get(i).draw(g, new java.awt.geom.Rectangle2D.Double((i % 2) * w, (i / 2) * h,
                    w, h));
        }
        g.dispose();
        ImageIO.write(img, "png", Path.of(args[1]).toFile());
        System.out.println("wrote " + args[1]);
    }

    private static JFreeChart chart(String title, String y, XYSeriesCollection data) {
        JFreeChart c = ChartFactory.createXYLineChart(title, "head density (layers 1..)", y,
                data, PlotOrientation.VERTICAL, true, false, false);
        XYPlot p = c.getXYPlot();
        XYLineAndShapeRenderer r = new XYLineAndShapeRenderer(true, true);
        p.setRenderer(r);
        ((org.jfree.chart.axis.NumberAxis) p.getRangeAxis()).setAutoRangeIncludesZero(false);
        return c;
    }
}
